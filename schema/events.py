from __future__ import annotations

import uuid
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from schema.message import Message
from schema.run import Run
from services import events


def _of(cls: type) -> Any:
    """Resolve the union member from the service event's class."""

    def is_type_of(obj: object, _info: object) -> bool:
        return isinstance(obj, cls)

    return classmethod(lambda _cls, obj, info: is_type_of(obj, info))


@strawberry.type
class RunStarted:
    run: Run
    is_type_of = _of(events.RunStarted)


@strawberry.type
class TextDelta:
    run_id: uuid.UUID
    index: int = strawberry.field(description="model text deltas included so far in the run")
    delta: str
    is_type_of = _of(events.TextDelta)


@strawberry.type
class TextSnapshot:
    run_id: uuid.UUID
    index: int
    text: str = strawberry.field(description="all the run's text up to model delta `index`")
    is_type_of = _of(events.TextSnapshot)


@strawberry.type
class ThinkingDelta:
    run_id: uuid.UUID
    delta: str
    is_type_of = _of(events.ThinkingDelta)


@strawberry.type
class ToolCallStarted:
    run_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    arguments: JSON | None
    is_type_of = _of(events.ToolCallStarted)


@strawberry.type
class ToolCallFinished:
    run_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    result: JSON | None
    is_type_of = _of(events.ToolCallFinished)


@strawberry.type
class MessageAdded:
    message: Message
    is_type_of = _of(events.MessageAdded)


@strawberry.type
class RunFinished:
    run: Run
    is_type_of = _of(events.RunFinished)


AgentEvent = Annotated[
    RunStarted
    | TextDelta
    | TextSnapshot
    | ThinkingDelta
    | ToolCallStarted
    | ToolCallFinished
    | MessageAdded
    | RunFinished,
    strawberry.union("AgentEvent"),
]
