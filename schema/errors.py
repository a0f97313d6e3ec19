"""Schema extensions that guard every operation: authentication and error codes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import MaskErrors, SchemaExtension
from tortoise.exceptions import DBConnectionError

from services.errors import ParleyError, ServiceUnavailable

log = logging.getLogger("parley.graphql")

INTROSPECTION_FIELDS = {"__schema", "__type", "__typename"}


class Authenticate(SchemaExtension):
    """Resolve the caller before any field runs: a bad token gives one error and no data.

    Pure introspection needs no token, so GraphiQL can load the schema before one is set.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        if not _introspection_only(ctx):
            try:
                await ctx.context.authenticate()
            except ParleyError as exc:
                ctx.result = GraphQLExecutionResult(
                    data=None, errors=[GraphQLError(exc.message, original_error=exc)]
                )
        yield


def _introspection_only(ctx: object) -> bool:
    doc = getattr(ctx, "graphql_document", None)
    if doc is None:
        return False
    for definition in doc.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                if getattr(getattr(selection, "name", None), "value", None) not in INTROSPECTION_FIELDS:
                    return False
    return True


def _code(error: GraphQLError) -> tuple[str, str]:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, ParleyError):
        return original.code, original.message
    if isinstance(original, DBConnectionError | OSError):
        return ServiceUnavailable.code, "the database cannot be reached right now; retry"
    if original is None or error.path is None:
        # Parsing, validation, variable coercion and limiter errors: the request was wrong.
        return "BAD_USER_INPUT", error.message
    if isinstance(original, ValueError | TypeError) and error.path is not None and _is_input_error(error):
        return "BAD_USER_INPUT", error.message
    log.error("unexpected error in %s", error.path, exc_info=original)
    return "INTERNAL_SERVER_ERROR", "Internal server error"


def _is_input_error(error: GraphQLError) -> bool:
    return error.message.startswith(("Variable ", "Argument ", "Expected value"))


class ErrorCodes(MaskErrors):
    """Give every error an ``extensions.code``; mask anything unexpected."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out = []
        for error in errors:
            code, message = _code(error)
            out.append(
                GraphQLError(
                    message,
                    nodes=error.nodes,
                    source=error.source,
                    positions=error.positions,
                    path=error.path,
                    extensions={**(error.extensions or {}), "code": code},
                )
            )
        return out

    def on_operation(self) -> Iterator[None]:
        yield from super().on_operation()
