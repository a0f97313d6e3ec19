"""How a run ended, read off what pydantic-ai produced: its reply, its partial text, its cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from pydantic_ai.exceptions import RunCancelled, RunTimedOut
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage

from models import Role, RunStatus
from services.runs import failures
from services.runs.handles import CancelReason
from services.transcript import MessageRow


@asynccontextmanager
async def entered(model: Model | str) -> AsyncIterator[None]:
    """A model built for this run is held entered by it, so that the HTTP client its provider opened
    closes when the run ends (pydantic-ai does that itself only for a model it builds from a string)."""
    if isinstance(model, str):
        yield
        return
    async with model:
        yield


def reply_of(added: list[MessageRow]) -> MessageRow | None:
    """The reply is text; a message that only calls tools is not."""
    return next((m for m in reversed(added) if m.role is Role.ASSISTANT and m.content), None)


def keeps_partial(error: failures.RunError | None) -> bool:
    """Cancelled, or interrupted by a stop: the partial text stays (a failure adds nothing)."""
    return error is None or error.code == "INTERRUPTED"


def has_reply(status: RunStatus, error: failures.RunError | None) -> bool:
    return status is not RunStatus.FAILED or keeps_partial(error)


def ends_with_text(messages: list[ModelMessage]) -> bool:
    last = messages[-1] if messages else None
    return isinstance(last, ModelResponse) and any(isinstance(p, TextPart) and p.content for p in last.parts)


def complete(messages: list[ModelMessage]) -> list[ModelMessage]:
    """Drop an interrupted response at the end: the failure lives on the run, not as a message."""
    if messages and isinstance(messages[-1], ModelResponse) and messages[-1].state == "interrupted":
        return messages[:-1]
    return messages


def dangling_calls(history: list[ModelMessage]) -> bool:
    calls = {
        p.tool_call_id
        for m in history
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart)
    }
    answered = {
        p.tool_call_id
        for m in history
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart | RetryPromptPart)
    }
    return bool(calls - answered)


def cost(usage: RunUsage | None) -> float | None:
    """USD from genai-prices (pydantic-ai prices known models); None when unknown."""
    cost = getattr(usage, "cost", None)
    return float(cost) if isinstance(cost, int | float | Decimal) else None


def cancelled(
    exc: RunCancelled, reason: CancelReason | None, run_timeout_s: float
) -> tuple[RunStatus, failures.RunError | None]:
    """A run stopped before its end: by its timeout, a stop of the process, a lost lock or a user."""
    if isinstance(exc, RunTimedOut):
        return RunStatus.FAILED, failures.timed_out(run_timeout_s)
    if reason == "shutdown":
        return RunStatus.FAILED, failures.SHUTDOWN
    if reason == "lost":
        return RunStatus.FAILED, failures.LOST
    return RunStatus.CANCELLED, None
