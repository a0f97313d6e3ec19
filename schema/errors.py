"""Schema extensions that guard every operation: authentication and error codes."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import MaskErrors, SchemaExtension

from services.errors import ParleyError, ServiceUnavailable, infrastructure_failure

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
                # Only plain fields: a top-level fragment (even one named `__schema`) selects data.
                if not isinstance(selection, FieldNode) or selection.name.value not in INTROSPECTION_FIELDS:
                    return False
    return True


def _code(error: GraphQLError) -> tuple[str, str]:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, ParleyError):
        return original.code, original.message
    failure = infrastructure_failure(original)
    if failure is not None and failure[0] == "unavailable":
        return ServiceUnavailable.code, ServiceUnavailable().message
    if failure is not None:
        # PostgreSQL or the driver refused a value (invalid text, out of range, ...): bad input.
        # The driver's own words (encodings, SQL parameters) stay in the server log.
        log.warning("database refused a value in %s: %s", error.path, failure[1])
        return "BAD_USER_INPUT", (
            "invalid input: a value could not be stored (text must be valid UTF-8 without NUL "
            "characters, and numbers within range)"
        )
    if original is None or (
        error.path is None and isinstance(original, GraphQLError | ValueError | TypeError)
    ):
        # Parsing, validation, variable coercion and limiter errors: the request was wrong.
        return "BAD_USER_INPUT", error.message
    if isinstance(original, ValueError | TypeError) and error.path is not None and _is_input_error(error):
        return "BAD_USER_INPUT", error.message
    log.error("unexpected error in %s", error.path, exc_info=original)
    return "INTERNAL_SERVER_ERROR", "Internal server error"


def is_expected(error: GraphQLError) -> bool:
    """A domain error or a malformed request: the client's business, not the server log's."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original is None or isinstance(original, ParleyError | GraphQLError)


def with_code(error: GraphQLError) -> GraphQLError:
    """The error as clients see it: an ``extensions.code``, masked when unexpected."""
    if (error.extensions or {}).get("code"):
        return error
    code, message = _code(error)
    original = _original(error)
    extra = original.extensions if isinstance(original, ParleyError) else {}  # e.g. retryAfter
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), **extra, "code": code},
    )


def _original(error: GraphQLError) -> BaseException | None:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def _without_suggestions(error: GraphQLError) -> GraphQLError:
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=error.extensions,
    )


def _is_input_error(error: GraphQLError) -> bool:
    return error.message.startswith(("Variable ", "Argument ", "Expected value"))


class ErrorCodes(MaskErrors):
    """Give every error an ``extensions.code``; mask anything unexpected.

    With introspection off, "Did you mean ...?" suggestions are cut from messages too: they
    would tell field names to anyone probing the schema.
    """

    def __init__(self, hide_suggestions: bool = False) -> None:
        super().__init__()
        self.hide_suggestions = hide_suggestions

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        coded = [with_code(error) for error in errors]
        if self.hide_suggestions:
            coded = [_without_suggestions(error) for error in coded]
        return coded

    def on_operation(self) -> Iterator[None]:
        yield from super().on_operation()
