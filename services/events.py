"""Agent events as the services produce them.

The GraphQL event types derive from these definitions, so this module imports nothing of the
database at run time (rows are named for the type checker only).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models import Run
    from services.transcript import MessageRow


@dataclass
class RunStarted:
    run: Run


@dataclass
class TextDelta:
    run_id: uuid.UUID
    index: int  # model text deltas included so far in the run
    delta: str


@dataclass
class TextSnapshot:
    run_id: uuid.UUID
    index: int
    text: str


@dataclass
class ThinkingDelta:
    run_id: uuid.UUID
    delta: str


@dataclass
class ToolCallStarted:
    run_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    arguments: Any


@dataclass
class ToolCallFinished:
    run_id: uuid.UUID
    tool_call_id: str
    tool_name: str
    result: Any


@dataclass
class ApprovalRequest:
    tool_call_id: str
    tool_name: str
    arguments: Any

    @classmethod
    def stored(cls, raw: dict[str, Any]) -> ApprovalRequest:
        return cls(raw["tool_call_id"], raw["tool_name"], raw.get("arguments"))


@dataclass
class ApprovalRequested:
    """The run paused: these calls wait for a person's decision (resolveApprovals)."""

    run_id: uuid.UUID
    requests: list[ApprovalRequest]


@dataclass
class MessageAdded:
    message: MessageRow


@dataclass
class RunFinished:
    run: Run


AgentEvent = (
    RunStarted
    | TextDelta
    | TextSnapshot
    | ThinkingDelta
    | ToolCallStarted
    | ToolCallFinished
    | MessageAdded
    | RunFinished
    | ApprovalRequested
)
