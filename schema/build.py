"""Assemble the ``strawberry.Schema`` from the types and the guarding extensions."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from schema.errors import Authenticate, ErrorCodes, is_expected
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription
from services.settings import Settings


class _ParserCache(ParserCache):
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


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Strawberry logs every error with its traceback; NOT_FOUND or a bad token is no news.
        super().process_errors([e for e in errors if not is_expected(e)], execution_context)


def build_schema(settings: Settings) -> strawberry.Schema:
    # The limiters' rule classes are made once: new classes per request would make every
    # request miss the validation cache (its key includes the rules).
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    # Factories, not instances: every operation gets its own extension objects.
    extensions: list = [
        partial(ErrorCodes, hide_suggestions=not settings.introspection),
        partial(AddValidationRules, rules),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        partial(_ParserCache, maxsize=256),
        partial(ValidationCache, maxsize=256),
        Authenticate,
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )


def print_sdl(settings: Settings) -> str:
    return build_schema(settings).as_str() + "\n"
