"""Subscription events projected to their GraphQL `data` without executing the selection set per event.

A subscription's document and variables are fixed for its lifetime and its events are plain data, so the
fields, fragments and @skip/@include are resolved once per possible runtime type into a plan; an event then
costs a getattr and the GraphQL type's own `coerce_output_value` per leaf. Whatever a plan does not cover
(resolvers, arguments, errors, awaitables, classes it cannot map) projects to None, and the caller executes
that event with graphql-core as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import partial
from typing import Any, TypeAlias
from uuid import UUID

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLFloat,
    GraphQLIncludeDirective,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLSkipDirective,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    Undefined,
    VariableValues,
    get_directive_values,
    get_variable_values,
    is_abstract_type,
    is_leaf_type,
    type_from_ast,
)
from graphql.pyutils import is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition, get_object_definition
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry.types.field import StrawberryField

__all__ = ["Projection", "compile_for", "compile_projection", "plain_execution"]

Step: TypeAlias = Callable[[Any], Any]
"""Completes one resolved value to its JSON-ready form, or raises to hand the event to graphql-core."""

_Field: TypeAlias = tuple[str, Callable[[Any, str], object], str, Step]
_Plan: TypeAlias = tuple[dict[str, Any], tuple[_Field, ...]]
"""An object's response template (keys in order, `__typename` filled in) and its data fields."""

# Strawberry keeps each GraphQL type's and field's own definition under this extensions key.
_DEFINITION = GraphQLCoreConverter.DEFINITION_BACKREF

# These coercions reject exceptions, awaitables and Undefined themselves; String, ID and custom
# scalars would stringify or pass them through, where graphql-core raises, awaits or nulls them.
_STRICT_SCALARS = (GraphQLInt, GraphQLFloat, GraphQLBoolean)
_PLAIN = frozenset({str, int, float, bool, dict, list, UUID, datetime, date, time, Decimal})


class _Fallback(Exception):
    """This event (when projecting) or this selection (when compiling) is for graphql-core."""


class Projection:
    """The `data` of one subscription operation, for one event at a time; compile it once."""

    __slots__ = ("_key", "_step")

    def __init__(self, key: str, step: Step) -> None:
        self._key = key
        self._step = step

    def __call__(self, root_field_value: object) -> dict[str, Any] | None:
        """What graphql-core's `data` would be for this event, or None when it must execute it."""
        try:
            return {self._key: self._step(root_field_value)}
        except Exception:  # any error is graphql-core's to report, with its path and message
            return None


def compile_projection(
    schema: strawberry.Schema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> Projection | None:
    """The projection of a (validated) subscription with one root field, or None if it is not covered."""
    if not plain_execution(schema):
        return None
    return compile_for(schema._schema, document, operation_name, variables)


def compile_for(
    gql_schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> Projection | None:
    """:func:`compile_projection` for a schema already known to execute plainly."""
    operation, fragments = _operation(document, operation_name)
    root_type = gql_schema.subscription_type
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION or root_type is None:
        return None
    if operation.directives:
        return None
    coerced = get_variable_values(gql_schema, operation.variable_definitions or (), dict(variables or {}))
    if isinstance(coerced, list):  # errors: the subscription fails in graphql-core
        return None
    compiler = _Compiler(gql_schema, fragments, coerced)
    try:
        # graphql-core refuses @skip/@include on a subscription's root selections.
        grouped = compiler.collect(root_type, [operation.selection_set], root=True)
        if len(grouped) != 1:
            return None
        [(key, nodes)] = grouped.items()
        field = root_type.fields.get(nodes[0].name.value)
        backref = field.extensions.get(_DEFINITION) if field else None
        if field is None or not (isinstance(backref, StrawberryField) and backref.is_subscription):
            return None
        # Per event the root field's resolver returns the event itself.
        return Projection(key, compiler.complete(field.type, nodes))
    except (_Fallback, RecursionError):  # RecursionError: a fragment cycle through a field (unvalidated)
        return None


def plain_execution(schema: strawberry.Schema) -> bool:
    """Whether events run through graphql-core's own executor with no resolve middleware around fields.

    A subclass of Strawberry's executor counts when it says that it resolves fields as Strawberry
    does (``plain_fields = True``; ``web/executor.py`` only changes how events are rendered).
    """
    executor = schema.execution_context_class
    if executor is not StrawberryGraphQLCoreExecutionContext and not getattr(executor, "plain_fields", False):
        return False
    for extension in schema.extensions:
        while isinstance(extension, partial):
            extension = extension.func
        cls = extension if isinstance(extension, type) else type(extension)
        # An unknown factory may build an extension with a `resolve` hook.
        if not issubclass(cls, SchemaExtension) or cls.resolve is not SchemaExtension.resolve:
            return False
    return True


def _operation(
    document: DocumentNode, operation_name: str | None
) -> tuple[OperationDefinitionNode | None, dict[str, FragmentDefinitionNode]]:
    """The operation graphql-core would run (None if ambiguous) and the fragments by name."""
    operation: OperationDefinitionNode | None = None
    fragments: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if operation_name is None:
                if operation is not None:
                    return None, fragments
                operation = definition
            elif definition.name and definition.name.value == operation_name:
                operation = definition
        elif isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
    return operation, fragments


class _Compiler:
    """Mirrors graphql-core's field collection and value completion, once per subscription."""

    def __init__(
        self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: VariableValues
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def collect(
        self, type_: GraphQLObjectType, selection_sets: Iterable[SelectionSetNode], root: bool = False
    ) -> dict[str, list[FieldNode]]:
        """The field nodes by response key, in graphql-core's order (its `collect_fields`)."""
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()

        def visit(selection_set: SelectionSetNode) -> None:
            for selection in selection_set.selections:
                if not self._included(selection, root):
                    continue
                if isinstance(selection, FieldNode):
                    grouped.setdefault((selection.alias or selection.name).value, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if self._matches(selection, type_):
                        visit(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is None or not self._matches(fragment, type_) or name in visited:
                        continue
                    if selection.arguments or fragment.variable_definitions:  # fragment variables
                        raise _Fallback
                    visited.add(name)
                    visit(fragment.selection_set)

        for selection_set in selection_sets:
            visit(selection_set)
        return grouped

    def _included(self, node: SelectionNode, root: bool) -> bool:
        if not node.directives:
            return True
        # Other directives act through resolve middleware (or are graphql-core's to reject).
        if root or any(directive.name.value not in ("skip", "include") for directive in node.directives):
            raise _Fallback
        try:
            skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
            if skip and skip["if"]:
                return False
            include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        except GraphQLError as error:  # e.g. `if: null`: graphql-core reports it for every such event
            raise _Fallback from error
        return not (include and not include["if"])

    def _matches(
        self, fragment: InlineFragmentNode | FragmentDefinitionNode, type_: GraphQLObjectType
    ) -> bool:
        if fragment.type_condition is None:
            return True
        condition = type_from_ast(self.schema, fragment.type_condition)
        if condition is type_:
            return True
        return is_abstract_type(condition) and self.schema.is_sub_type(condition, type_)

    def complete(self, type_: GraphQLOutputType, nodes: list[FieldNode]) -> Step:
        """The step completing values of `type_` selected by `nodes` (graphql-core's `complete_value`)."""
        nullable = not isinstance(type_, GraphQLNonNull)
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            return _list(self.complete(type_.of_type, nodes), nullable)
        if is_leaf_type(type_):
            strict = type_ in _STRICT_SCALARS or isinstance(type_, GraphQLEnumType)
            return _leaf(type_.coerce_output_value, nullable, guarded=not strict)
        if isinstance(type_, GraphQLUnionType):
            plans: dict[type, _Plan] = {}
            for member in type_.types:
                try:
                    plans[_origin(member)] = self.plan(member, nodes)
                except _Fallback:  # events of that member go to graphql-core
                    continue
            if not plans:
                raise _Fallback
            return _resolved(plans, nullable)
        if isinstance(type_, GraphQLObjectType):
            if type_.is_type_of is None:  # graphql-core does not check the value's class at all
                return _object(self.plan(type_, nodes), nullable)
            return _resolved({_origin(type_): self.plan(type_, nodes)}, nullable)
        raise _Fallback  # interfaces: their `resolve_type` is not mirrored

    def plan(self, type_: GraphQLObjectType, nodes: list[FieldNode]) -> _Plan:
        template: dict[str, Any] = {}
        fields: list[_Field] = []
        selections = [node.selection_set for node in nodes if node.selection_set]
        for key, key_nodes in self.collect(type_, selections).items():
            first = key_nodes[0]  # graphql-core resolves a response key with its first node's field
            if first.name.value == "__typename":
                template[key] = type_.name
                continue
            field = type_.fields.get(first.name.value)
            backref = field.extensions.get(_DEFINITION) if field else None
            if (
                field is None
                or field.args
                or first.arguments
                or not isinstance(backref, StrawberryField)
                or not backref.is_basic_field  # a resolver or field extensions (permissions, ...)
                or type(backref).get_result is not StrawberryField.get_result
            ):
                raise _Fallback
            template[key] = None  # keeps the key's place in the response order
            step = self.complete(field.type, key_nodes)
            fields.append((key, backref.default_resolver, backref.python_name, step))
        return template, tuple(fields)


def _origin(type_: GraphQLObjectType) -> type:
    """The class whose exact instances Strawberry resolves to `type_` and graphql-core completes as is."""
    definition = type_.extensions.get(_DEFINITION)
    if not isinstance(definition, StrawberryObjectDefinition) or definition.is_type_of is not None:
        raise _Fallback  # a custom `is_type_of` may refuse any instance
    origin = definition.origin
    # A generic's class maps to its specializations; an awaitable or exception is not completed as is.
    awaitable = hasattr(origin, "__await__")
    if get_object_definition(origin) is not definition or issubclass(origin, Exception) or awaitable:
        raise _Fallback
    return origin


def _irregular(value: object) -> bool:
    """What graphql-core raises (an exception), awaits or nulls (Undefined) before completing a value."""
    return isinstance(value, Exception) or is_awaitable(value) or value is Undefined


def _leaf(coerce: Callable[[Any], Any], nullable: bool, guarded: bool) -> Step:
    def step(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Fallback
        if guarded and type(value) not in _PLAIN and _irregular(value):
            raise _Fallback
        result = coerce(value)
        if result is None or result is Undefined:
            raise _Fallback
        return result

    return step


def _list(item: Step, nullable: bool) -> Step:
    def step(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Fallback
        if type(value) is not list and type(value) is not tuple:  # iterators would be consumed
            raise _Fallback
        return [item(element) for element in value]

    return step


def _object(plan: _Plan, nullable: bool) -> Step:
    """Values of an object type without `is_type_of`: graphql-core reads any value's attributes."""
    template, fields = plan

    def step(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Fallback
        if _irregular(value):
            raise _Fallback
        data = template.copy()
        for key, get, name, complete in fields:
            data[key] = complete(get(value, name))
        return data

    return step


def _resolved(plans: dict[type, _Plan], nullable: bool) -> Step:
    """Values whose runtime type Strawberry resolves from their class (unions, implementations)."""

    def step(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise _Fallback
        plan = plans.get(type(value))
        # `strawberry.cast` overrides the class, and subclasses are resolved by looking further.
        if plan is None or getattr(value, TYPE_CAST_ATTRIBUTE, None) is not None:
            raise _Fallback
        template, fields = plan
        data = template.copy()
        for key, get, name, complete in fields:
            data[key] = complete(get(value, name))
        return data

    return step
