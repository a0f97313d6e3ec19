"""What a request's document must be before anything runs (Strawberry extensions)."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import ParserCache, SchemaExtension


class ParserCacheOrErrors(ParserCache):
    """ParserCache that leaves a document it cannot parse to Strawberry's own parse step.

    ParserCache parses inside its hook, so a syntax error (or the token/nesting limit)
    escaped the operation and reached clients without an error code. Parsing again in
    the operation reports it like any other request error.
    """

    def on_parse(self) -> Iterator[None]:
        try:
            yield from super().on_parse()
        except GraphQLError:
            self.execution_context.graphql_document = None
            yield


class OneOperation(SchemaExtension):
    """A document with several operations needs ``operationName`` (GraphQL spec, GetOperation).

    Strawberry would run the first one; the spec makes it a request error, reported as a
    validation error (no ``data``; 400 with ``application/graphql-response+json``).
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # `operation_name` falls back to the first operation's name: ask what the client sent.
        if document is not None and context._provided_operation_name is None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                context.pre_execution_errors = [
                    GraphQLError(
                        "the document holds several operations: name the one to run in `operationName`"
                    )
                ]
        yield
