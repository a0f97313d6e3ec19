"""The streamed events. Flat ones derive from the services' definitions (``services.events``);
those that carry a row hold its GraphQL type."""

from __future__ import annotations

# Strawberry reads inherited annotations in this module's namespace: they name these.
import uuid
from typing import Annotated, Any  # noqa: F401

import strawberry
from strawberry.scalars import JSON

from schema.message import Message
from schema.run import Run
from schema.tools import ApprovalRequest
from services import events


@strawberry.type
class RunStarted:
    run: Run


@strawberry.type
class TextDelta(events.TextDelta):
    index: int = strawberry.field(description="model text deltas included so far in the run")


@strawberry.type
class TextSnapshot(events.TextSnapshot):
    text: str = strawberry.field(description="all the run's text up to model delta `index`")


@strawberry.type
class ThinkingDelta(events.ThinkingDelta):
    pass


@strawberry.type
class ToolCallStarted(events.ToolCallStarted):
    arguments: JSON | None


@strawberry.type
class ToolCallFinished(events.ToolCallFinished):
    result: JSON | None


@strawberry.type
class MessageAdded:
    message: Message


@strawberry.type
class RunFinished:
    run: Run


@strawberry.type
class ApprovalRequested:
    run_id: uuid.UUID
    requests: list[ApprovalRequest]


AgentEvent = Annotated[
    RunStarted
    | TextDelta
    | TextSnapshot
    | ThinkingDelta
    | ToolCallStarted
    | ToolCallFinished
    | MessageAdded
    | RunFinished
    | ApprovalRequested,
    strawberry.union("AgentEvent"),
]
