"""Subscription events rendered by compiled projection; graphql-core for whatever it does not cover.

graphql-core executes a subscription's selection set anew for every event (~200-300 µs);
events are flat data, so the selection is compiled once per subscription into a projection
(``web/projection.py``) and each event costs a few dict operations. An event the projection
does not cover (a field with a resolver, a null in a non-null field, ...) is executed by
graphql-core exactly as before.
"""

from __future__ import annotations

from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema, OperationType
from graphql.execution import Executor
from graphql.pyutils import AwaitableOrValue
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from web.projection import Projection, compile_for


class ProjectingExecutor(StrawberryGraphQLCoreExecutionContext):
    plain_fields = True  # fields resolve as Strawberry's own executor resolves them
    projection: Projection | None = None

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None,
        operation_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | Executor[Any]:
        built = super().build(
            schema, document, root_value, context_value, raw_variable_values, operation_name, *args, **kwargs
        )
        if isinstance(built, ProjectingExecutor) and built.operation.operation is OperationType.SUBSCRIPTION:
            built.projection = compile_for(schema, document, operation_name, raw_variable_values)
        return built

    def execute_operation(self, serially: bool | None = None) -> AwaitableOrValue[Any]:
        # A per-event executor (a copy of the subscription's) carries the event as its root value.
        if self.projection is not None:
            data = self.projection(self.root_value)
            if data is not None:
                return ExecutionResult(data=data)
        return super().execute_operation(serially)
