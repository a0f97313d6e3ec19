"""pydantic-ai stream events → Parley events, for one run.

Called for every model delta, so it does as little as possible: one type test for the common
case, no allocation beyond the event itself.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolReturnPart,
)

from services import events
from services.conversation import tool_arguments
from services.runs.handles import RunHandle

if TYPE_CHECKING:
    from services.runtime import Runtime


class Relay:
    def __init__(self, rt: Runtime, handle: RunHandle) -> None:
        self.rt = rt
        self.handle = handle
        self.session_id = handle.session_id
        self.run_id = handle.run.id

    def __call__(self, event: object) -> None:
        if isinstance(event, PartDeltaEvent):
            delta = event.delta
            if isinstance(delta, TextPartDelta):
                if delta.content_delta:
                    self.text(delta.content_delta)
            elif isinstance(delta, ThinkingPartDelta) and delta.content_delta:
                self.rt.emit(self.session_id, events.ThinkingDelta(self.run_id, delta.content_delta))
        elif isinstance(event, PartStartEvent):
            part = event.part
            if isinstance(part, TextPart) and part.content:
                self.text(part.content)
            elif isinstance(part, ThinkingPart) and part.content:
                self.rt.emit(self.session_id, events.ThinkingDelta(self.run_id, part.content))
        elif isinstance(event, FunctionToolCallEvent):
            call = event.part
            started = events.ToolCallStarted(
                self.run_id, call.tool_call_id, call.tool_name, tool_arguments(call)
            )
            self.rt.emit(self.session_id, started)
        elif isinstance(event, FunctionToolResultEvent):
            result = event.part
            content = result.content if isinstance(result, ToolReturnPart) else result.model_response()
            finished = events.ToolCallFinished(
                self.run_id, result.tool_call_id, result.tool_name, _jsonable(content)
            )
            self.rt.emit(self.session_id, finished)

    def text(self, delta: str) -> None:
        handle = self.handle
        if handle.index == 0:
            self.rt.metrics.first_token(handle.run.model, time.monotonic() - handle.started)
        handle.add_text(delta)
        self.rt.emit(self.session_id, events.TextDelta(self.run_id, handle.index, delta))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
