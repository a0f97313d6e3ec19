"""web.projection against graphql-core: for every document of a corpus and every event, the projection is
Strawberry's own `data` (key order included) or None exactly where graphql-core has to run.

A small schema of its own mirrors Parley's event shapes, so these tests need no database.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import PurePosixPath
from types import SimpleNamespace
from typing import Annotated, Any, cast
from unittest.mock import patch

import pytest
import strawberry
from graphql import GraphQLError, parse
from strawberry.directive import DirectiveLocation, DirectiveValue
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.permission import BasePermission
from strawberry.scalars import JSON
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from web.projection import Projection, _Compiler, compile_projection

SESSION = uuid.UUID("00000000-0000-4000-8000-000000000001")
RUN_ID = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
STARTED = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@strawberry.enum
class RunStatus(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.enum
class Role(enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"


class Allow(BasePermission):
    message = "denied"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return True


@strawberry.type
class Usage:
    input_tokens: int
    output_tokens: int


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Part:
    kind: str
    text: str | None


@strawberry.type
class Message(Node):  # implementing an interface gives the type a generated `is_type_of`
    role: Role
    content: str
    created_at: datetime
    tags: list[str]
    scores: list[float | None] | None
    parts: list[Part]
    metadata: JSON | None
    pinned: bool

    @strawberry.field
    def usage(self) -> Usage | None:
        return Usage(input_tokens=3, output_tokens=len(self.content))


@strawberry.type
class Run:
    id: uuid.UUID
    status: RunStatus
    model: str
    started_at: datetime
    finished_at: datetime | None
    cost: float | None
    audited: str = strawberry.field(default="yes", permission_classes=[Allow])

    @strawberry.field
    def reply(self) -> Message | None:
        return MESSAGE

    @strawberry.field
    def label(self, upper: bool = False) -> str:
        return self.model.upper() if upper else self.model


@strawberry.type
class RunStarted:
    run: Run


@strawberry.type
class TextDelta:
    run_id: uuid.UUID
    index: int
    delta: str


@strawberry.type
class TextSnapshot:
    run_id: uuid.UUID
    index: int
    text: str


@strawberry.type
class ThinkingDelta:
    run_id: uuid.UUID
    delta: str


@strawberry.type
class ToolCallStarted:
    run_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    arguments: JSON | None


@strawberry.type
class ToolCallFinished:
    run_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    result: JSON | None


@strawberry.type
class MessageAdded:
    message: Message


@strawberry.type
class RunFinished:
    run: Run


class RawHeartbeat:
    """A service object that only Heartbeat's `is_type_of` resolves."""

    def __init__(self, at: datetime) -> None:
        self.at = at


@strawberry.type
class Heartbeat:
    at: datetime

    @classmethod
    def is_type_of(cls, obj: object, _info: object) -> bool:
        return isinstance(obj, Heartbeat | RawHeartbeat)


class LateDelta(TextDelta):
    """Undecorated: Strawberry resolves it through the definition it inherits."""


AgentEvent = Annotated[
    RunStarted
    | TextDelta
    | TextSnapshot
    | ThinkingDelta
    | ToolCallStarted
    | ToolCallFinished
    | MessageAdded
    | RunFinished
    | Heartbeat,
    strawberry.union("AgentEvent"),
]


@strawberry.directive(locations=[DirectiveLocation.FIELD])
def uppercase(value: DirectiveValue[str]) -> str:
    return value.upper()


def _event(info: strawberry.Info) -> Any:
    return info.context["event"]


@strawberry.type
class Query:
    ping: str = "pong"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def chat(
        self, info: strawberry.Info, session_id: uuid.UUID, content: str = ""
    ) -> AsyncGenerator[AgentEvent, None]:
        yield _event(info)

    @strawberry.subscription
    async def session_events(
        self, info: strawberry.Info, session_id: uuid.UUID, after_sequence: int | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        yield _event(info)

    @strawberry.subscription
    async def maybe_event(self, info: strawberry.Info) -> AsyncGenerator[AgentEvent | None, None]:
        yield _event(info)

    @strawberry.subscription
    async def run_updates(self, info: strawberry.Info) -> AsyncGenerator[Run, None]:
        yield _event(info)

    @strawberry.subscription
    async def nodes(self, info: strawberry.Info) -> AsyncGenerator[Node, None]:
        yield _event(info)


class QuietSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """The error cases are expected; their tracebacks are no news."""


class Harmless(SchemaExtension):
    def __init__(self, *, tag: str = "") -> None:
        self.tag = tag

    def on_execute(self) -> Any:
        yield


class Rewrite(SchemaExtension):
    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        return _next(root, info, *args, **kwargs)


def make_schema(*extensions: Any) -> strawberry.Schema:
    return QuietSchema(
        query=Query,
        subscription=Subscription,
        directives=[uppercase],
        # Like Parley's: factories, and caches that keep 800 subscriptions of the corpus quick.
        extensions=[partial(ParserCache, maxsize=64), partial(ValidationCache, maxsize=64), *extensions],
    )


SCHEMA = make_schema()

RUN = Run(
    id=RUN_ID,
    status=RunStatus.RUNNING,
    model="echo",
    started_at=STARTED,
    finished_at=None,
    cost=None,
)
DONE = Run(
    id=RUN_ID,
    status=RunStatus.SUCCEEDED,
    model="gpt",
    started_at=STARTED,
    finished_at=datetime(2025, 1, 2, 3, 5, tzinfo=UTC),
    cost=0.25,
)
MESSAGE = Message(
    id=strawberry.ID("m-1"),
    role=Role.ASSISTANT,
    content="Hello there",
    created_at=STARTED,
    tags=["a", "b"],
    scores=[0.5, None, 2],
    parts=[Part(kind="text", text="Hello"), Part(kind="image", text=None)],
    metadata=JSON({"source": "test", "nested": {"n": [1, 2.5, None, True]}}),
    pinned=False,
)


def _cast_delta() -> object:
    return strawberry.cast(TextDelta, SimpleNamespace(run_id=RUN_ID, index=1, delta="cast"))


def events() -> dict[str, object]:
    """One of each union member, and the values graphql-core raises on, awaits or resolves otherwise."""
    done = asyncio.get_running_loop().create_future()
    done.set_result("awaited")
    return {
        "started": RunStarted(run=RUN),
        "delta": TextDelta(run_id=RUN_ID, index=3, delta="hi"),
        "snapshot": TextSnapshot(run_id=RUN_ID, index=3, text="hi there"),
        "thinking": ThinkingDelta(run_id=RUN_ID, delta="hmm"),
        "tool_started": ToolCallStarted(
            run_id=RUN_ID, tool_call_id="c1", tool_name="search", arguments=JSON({"q": "x", "n": [1, 2]})
        ),
        "tool_started_null": ToolCallStarted(run_id=RUN_ID, tool_call_id="c2", tool_name="t", arguments=None),
        "tool_finished": ToolCallFinished(
            run_id=RUN_ID, tool_call_id="c1", tool_name="search", result=JSON([1, "two", {"three": 3.0}])
        ),
        "message": MessageAdded(message=MESSAGE),
        "finished": RunFinished(run=DONE),
        # Coerced by the type's own rules: the enum's raw value, any object through `str`.
        "started_raw_status": RunStarted(run=Run(**{**vars(RUN), "status": cast(Any, "failed")})),
        "delta_path": TextDelta(run_id=RUN_ID, index=0, delta=cast(Any, PurePosixPath("a/b"))),
        # graphql-core reports an error for these (when the field is selected).
        "delta_null": TextDelta(run_id=RUN_ID, index=4, delta=cast(Any, None)),
        "index_overflow": TextDelta(run_id=RUN_ID, index=2**40, delta="big"),
        "delta_exception": TextDelta(run_id=RUN_ID, index=5, delta=cast(Any, KeyError("boom"))),
        "json_exception": ToolCallFinished(
            run_id=RUN_ID, tool_call_id="c3", tool_name="t", result=JSON(ValueError("boom"))
        ),
        "finished_nan": RunFinished(run=Run(**{**vars(DONE), "cost": math.nan})),
        # graphql-core handles these fine, but not as plain data of their own class.
        "delta_awaitable": TextDelta(run_id=RUN_ID, index=6, delta=cast(Any, done)),
        "heartbeat": Heartbeat(at=STARTED),
        "raw_heartbeat": RawHeartbeat(at=STARTED),
        "late_delta": LateDelta(run_id=RUN_ID, index=7, delta="late"),
        "cast_delta": _cast_delta(),
    }


# Where graphql-core succeeds and the projection must still hand the event over: always for classes it
# cannot map, and when TextDelta's `delta` is selected for the awaitable.
UNION_FALLBACK = frozenset({"heartbeat", "raw_heartbeat", "late_delta", "cast_delta"})
DELTA_FALLBACK = UNION_FALLBACK | {"delta_awaitable"}


def run_events() -> dict[str, object]:
    return {
        "running": RUN,
        "done": DONE,
        "namespace": SimpleNamespace(**{**vars(DONE), "model": "duck"}),  # no class check on object types
        "nan": Run(**{**vars(DONE), "cost": math.nan}),
        "none": None,
        "exception": RuntimeError("boom"),
    }


@dataclass(frozen=True)
class Case:
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    fallback: frozenset[str] = UNION_FALLBACK
    events: Callable[[], dict[str, object]] = events


CHAT = f'chat(sessionId: "{SESSION}")'


def chat(selection: str, fragments: str = "", variables: str = "", root: str = CHAT, name: str = "") -> str:
    """A subscription document selecting `selection` on the root field `root`."""
    return f"subscription {name}{variables} {{ {root} {{ {selection} }} }} {fragments}"


ALL_MEMBERS = """
    __typename
    ... on RunStarted { run { id status model startedAt finishedAt cost } }
    ... on TextDelta { runId index delta }
    ... on TextSnapshot { runId index text }
    ... on ThinkingDelta { runId delta }
    ... on ToolCallStarted { runId toolCallId toolName arguments }
    ... on ToolCallFinished { runId toolCallId toolName result }
    ... on MessageAdded {
        message { id role content createdAt tags scores parts { kind text } metadata pinned }
    }
    ... on RunFinished { run { id status model startedAt finishedAt cost } }
"""
STARTED_EVENTS = frozenset({"started", "started_raw_status"})

CASES: dict[str, Case] = {
    "typename only": Case(chat("__typename")),
    "text delta with a variable argument": Case(
        chat(
            "__typename ... on TextDelta { runId index delta }",
            variables="($sid: UUID!)",
            root="chat(sessionId: $sid)",
        ),
        {"sid": str(SESSION)},
        fallback=DELTA_FALLBACK,
    ),
    "every member, every plain field": Case(chat(ALL_MEMBERS), fallback=DELTA_FALLBACK),
    "root alias and aliases": Case(
        chat("kind: __typename ... on TextDelta { d: delta i: index }", root=f"events: {CHAT}"),
        fallback=DELTA_FALLBACK,
    ),
    "one field under several aliases": Case(
        chat("... on TextDelta { a: delta index b: delta i2: index t: __typename }"), fallback=DELTA_FALLBACK
    ),
    "__typename between fields": Case(
        chat("... on TextDelta { runId __typename delta } ... on ThinkingDelta { delta }"),
        fallback=DELTA_FALLBACK,
    ),
    "named fragments": Case(
        chat(
            "...Delta ...Snap",
            "fragment Delta on TextDelta { runId index delta } fragment Snap on TextSnapshot { text index }",
        ),
        fallback=DELTA_FALLBACK,
    ),
    "nested named fragments": Case(
        chat(
            "...Ev",
            "fragment Ev on AgentEvent { __typename ...Deltas }"
            " fragment Deltas on AgentEvent { ... on TextDelta { ...D } ... on ThinkingDelta { ...T } }"
            " fragment D on TextDelta { delta ...Ids } fragment T on ThinkingDelta { ...Ids delta }"
            " fragment Ids on AgentEvent { ... on TextDelta { runId index } ... on ThinkingDelta { runId } }",
        ),
        fallback=DELTA_FALLBACK,
    ),
    "fragment on another member selects nothing": Case(
        chat("...Snap", "fragment Snap on TextSnapshot { text }")
    ),
    "fragment on the union itself": Case(
        chat("... on AgentEvent { __typename ... on TextDelta { delta } }"), fallback=DELTA_FALLBACK
    ),
    "inline fragment without a type condition": Case(
        chat("... { __typename } ... on TextDelta { ... { delta } }"), fallback=DELTA_FALLBACK
    ),
    "merging keeps the first position": Case(
        chat("... on TextDelta { delta } ... on TextDelta { runId delta index } k: __typename"),
        fallback=DELTA_FALLBACK,
    ),
    "merging across a fragment and an inline fragment": Case(
        chat("...D ... on TextDelta { index delta }", "fragment D on TextDelta { delta runId }"),
        fallback=DELTA_FALLBACK,
    ),
    "nested objects merge": Case(
        chat(
            "... on RunStarted { run { id status } } ... on RunStarted { run { model id __typename } } ...R",
            "fragment R on RunStarted { run { startedAt } }",
        )
    ),
    "literal @skip and @include": Case(
        chat(
            "... on TextDelta { delta @include(if: true) index @skip(if: true)"
            " runId @skip(if: false) @include(if: true) t: __typename @include(if: false) }"
        ),
        fallback=DELTA_FALLBACK,
    ),
    "@include from a true variable": Case(
        chat("... on TextDelta { delta @include(if: $on) index }", variables="($on: Boolean!)"),
        {"on": True},
        fallback=DELTA_FALLBACK,
    ),
    "@include from a false variable": Case(
        chat("... on TextDelta { delta @include(if: $on) index }", variables="($on: Boolean!)"), {"on": False}
    ),
    "@skip from a missing variable's default": Case(
        chat("... on TextDelta { delta @skip(if: $off) index }", variables="($off: Boolean = true)")
    ),
    "@skip from a variable overriding its default": Case(
        chat("... on TextDelta { delta @skip(if: $off) index }", variables="($off: Boolean = true)"),
        {"off": False},
        fallback=DELTA_FALLBACK,
    ),
    "@skip wins over @include": Case(
        chat(
            "... on TextDelta { delta @skip(if: $a) @include(if: $b) index @skip(if: $c) @include(if: $b) }",
            variables="($a: Boolean!, $b: Boolean!, $c: Boolean!)",
        ),
        {"a": True, "b": True, "c": False},
    ),
    "directives on fragments": Case(
        chat(
            "... on TextDelta @include(if: $x) { delta } ...S @skip(if: $y) ... @skip(if: $x) { __typename }",
            "fragment S on TextSnapshot { text }",
            variables="($x: Boolean!, $y: Boolean = false)",
        ),
        {"x": True},
        fallback=DELTA_FALLBACK,
    ),
    "a null @skip variable is an error for its member only": Case(
        chat(
            "... on TextDelta { delta @skip(if: $off) } ... on ThinkingDelta { delta }",
            variables="($off: Boolean = false)",
        ),
        {"off": None},
    ),
    "a spread skipped once, then included": Case(
        chat(
            "...D @skip(if: true) __typename ...D ...D @include(if: true)",
            "fragment D on TextDelta { delta }",
        ),
        fallback=DELTA_FALLBACK,
    ),
    "all scalar kinds in nested objects": Case(
        chat(
            "... on RunFinished { run { __typename id status model startedAt finishedAt cost } }"
            " ... on MessageAdded { message { id role createdAt pinned metadata scores tags } }"
        )
    ),
    "lists of objects and scalars": Case(
        chat("... on MessageAdded { message { parts { text kind t: __typename } tags } }")
    ),
    "fragments on an interface inside an object": Case(
        chat(
            "... on MessageAdded { message { ... on Node { id } ...N content } }",
            "fragment N on Node { nid: id }",
        )
    ),
    "JSON scalars": Case(
        chat("... on ToolCallStarted { arguments toolName } ... on ToolCallFinished { result }")
    ),
    "a resolver field falls back": Case(
        chat(
            "__typename ... on RunFinished { run { id reply { content } } }"
            " ... on RunStarted { run { id reply { content } } } ... on TextDelta { delta }"
        ),
        fallback=DELTA_FALLBACK | STARTED_EVENTS | {"finished", "finished_nan"},
    ),
    "a field with arguments falls back": Case(
        chat("... on RunStarted { run { label(upper: true) } } ... on TextDelta { delta }"),
        fallback=DELTA_FALLBACK | STARTED_EVENTS,
    ),
    "a field with a permission falls back": Case(
        chat("... on RunStarted { run { audited } } ... on ThinkingDelta { delta }"),
        fallback=UNION_FALLBACK | STARTED_EVENTS,
    ),
    "a nested resolver field falls back": Case(
        chat("... on MessageAdded { message { content usage { inputTokens } } }"),
        fallback=UNION_FALLBACK | {"message"},
    ),
    "a custom directive falls back for its member only": Case(
        chat("... on TextDelta { delta @uppercase } ... on ThinkingDelta { delta }"),
        fallback=DELTA_FALLBACK | {"delta", "delta_path", "index_overflow"},
    ),
    "a chosen operation among several": Case(
        chat("__typename", name="A")
        + chat("... on TextDelta { delta }", root=f'sessionEvents(sessionId: "{SESSION}")', name="B")
        + " query C { ping }",
        operation_name="B",
        fallback=DELTA_FALLBACK,
    ),
    "a root argument from a variable's default": Case(
        chat(
            "__typename ... on ThinkingDelta { delta }",
            variables="($after: Int = 5)",
            root=f'sessionEvents(sessionId: "{SESSION}", afterSequence: $after)',
        )
    ),
    "a root field spread from a fragment": Case(
        f"subscription {{ ...Root }} fragment Root on Subscription {{ e: {CHAT} {{ __typename }} }}"
    ),
    "a root field selected twice": Case(
        f"subscription {{ {CHAT} {{ ... on TextDelta {{ delta }} }}"
        f" {CHAT} {{ __typename ... on TextDelta {{ index }} }} }}",
        fallback=DELTA_FALLBACK,
    ),
    "a nullable root": Case(
        chat("__typename ... on TextDelta { delta }", root="maybeEvent"),
        events=lambda: {**events(), "none": None},
        fallback=DELTA_FALLBACK,
    ),
    "an object root": Case(
        chat(
            "__typename id status model ...R cost",
            "fragment R on Run { startedAt finishedAt }",
            root="runUpdates",
        ),
        fallback=frozenset(),
        events=run_events,
    ),
}


async def first_result(case: Case, event: object) -> ExecutionResult:
    """Strawberry's own result for the subscription's first event."""
    stream = await SCHEMA.subscribe(
        case.query,
        variable_values=case.variables,
        context_value={"event": event},
        operation_name=case.operation_name,
    )
    try:
        return await anext(stream)
    finally:
        await stream.aclose()


async def execute(case: Case, event: object) -> ExecutionResult:
    result = await first_result(case, event)
    assert not isinstance(result, PreExecutionError), result.errors
    return result


def compile_case(case: Case, schema: strawberry.Schema = SCHEMA) -> Projection | None:
    return compile_projection(schema, parse(case.query), case.operation_name, case.variables)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
async def test_projection_is_graphql_cores_data(name: str) -> None:
    case = CASES[name]
    projection = compile_case(case)
    assert projection is not None
    projected = 0
    for event_name, event in case.events().items():
        result = await execute(case, event)
        data = projection(event)
        if result.errors or event_name in case.fallback:
            assert data is None, (event_name, data, result)
            continue
        assert data == result.data, event_name
        assert json.dumps(data) == json.dumps(result.data), event_name  # the same key order
        projected += 1
    assert projected >= 3


async def test_graphql_core_needs_no_help_for_the_fallback_events() -> None:
    """The declared fallbacks are events graphql-core answers without errors: no error case hides there."""
    case = CASES["every member, every plain field"]
    all_events = events()
    for name in UNION_FALLBACK:
        result = await execute(case, all_events[name])
        assert not result.errors and result.data, name


async def test_errors_fall_back() -> None:
    case = CASES["every member, every plain field"]
    projection = compile_case(case)
    assert projection is not None
    all_events = events()
    for name in ("delta_null", "index_overflow", "delta_exception", "json_exception", "finished_nan"):
        assert (await execute(case, all_events[name])).errors, name
        assert projection(all_events[name]) is None, name


TYPENAME = f"{CHAT} {{ __typename }}"
UNCOVERED: dict[str, tuple[str, dict[str, Any] | None, str | None]] = {
    "a query": ("query { ping }", None, None),
    "two operations, no name": (f"subscription {{ {TYPENAME} }} subscription B {{ {TYPENAME} }}", None, None),
    "an unknown operation name": (f"subscription A {{ {TYPENAME} }}", None, "Missing"),
    "two root fields": (f"subscription {{ {TYPENAME} maybeEvent {{ __typename }} }}", None, None),
    "a missing variable": ("subscription ($sid: UUID!) { chat(sessionId: $sid) { __typename } }", None, None),
    "an invalid variable": (
        "subscription ($sid: UUID!) { chat(sessionId: $sid) { __typename } }",
        {"sid": "nope"},
        None,
    ),
    "a directive variable of the wrong type": (
        f"subscription ($on: Boolean!) {{ {CHAT} {{ __typename @include(if: $on) }} }}",
        {"on": "yes"},
        None,
    ),
    "@include on the root field": (
        f"subscription {{ {CHAT} @include(if: true) {{ __typename }} }}",
        None,
        None,
    ),
    "an interface root": ("subscription { nodes { id } }", None, None),
    "a directive on the operation": (f"subscription @uppercase {{ {TYPENAME} }}", None, None),
}


@pytest.mark.parametrize("name", UNCOVERED)
def test_uncovered_operations_compile_to_none(name: str) -> None:
    query, variables, operation_name = UNCOVERED[name]
    assert compile_projection(SCHEMA, parse(query), operation_name, variables) is None


async def test_a_missing_required_variable_is_graphql_cores_error() -> None:
    case = Case(f"subscription ($on: Boolean!) {{ {CHAT} {{ __typename @include(if: $on) }} }}")
    assert compile_case(case) is None
    assert isinstance(await first_result(case, events()["delta"]), PreExecutionError)


class CustomExecution(StrawberryGraphQLCoreExecutionContext):
    pass


def test_a_resolve_hook_or_another_executor_disables_projection() -> None:
    case = CASES["typename only"]
    assert compile_case(case, make_schema(Rewrite)) is None
    executor = QuietSchema(query=Query, subscription=Subscription, execution_context_class=CustomExecution)
    assert compile_case(case, executor) is None
    assert compile_case(case, make_schema(lambda: Harmless())) is None  # an opaque factory might hook
    assert compile_case(case, make_schema(partial(Harmless, tag="x"))) is not None


async def test_one_compiled_projection_serves_every_event() -> None:
    case = CASES["every member, every plain field"]
    projection = compile_case(case)
    assert projection is not None
    reference = await execute(case, events()["delta"])
    # Nothing is collected or planned per event.
    with (
        patch.object(_Compiler, "collect", side_effect=AssertionError),
        patch.object(_Compiler, "plan", side_effect=AssertionError),
    ):
        for index in range(500):
            event = TextDelta(run_id=RUN_ID, index=index, delta=f"t{index}")
            expected = {
                "chat": {**cast(dict[str, Any], reference.data)["chat"], "index": index, "delta": f"t{index}"}
            }
            assert projection(event) == expected
