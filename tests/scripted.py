"""Scripted pydantic-ai models for tests, registered under agent model strings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from services.llm import ModelRegistry

StreamFn = Callable[[list[ModelMessage], AgentInfo], AsyncIterator[Any]]


class Recorder:
    """Remembers what the model was sent on each request."""

    def __init__(self) -> None:
        self.requests: list[list[ModelMessage]] = []
        self.instructions: list[str | None] = []


def register(models: ModelRegistry, stream_fn: StreamFn, recorder: Recorder | None = None) -> str:
    name = f"script:{uuid.uuid4().hex[:10]}"

    async def recording(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if recorder is not None:
            recorder.requests.append(list(messages))
            recorder.instructions.append(info.instructions)
        async for item in stream_fn(messages, info):
            yield item

    models.register(name, lambda: FunctionModel(stream_function=recording, model_name=name))
    return name


def last_user_text(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            # Consecutive requests are merged by pydantic-ai: the newest prompt is the last part.
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    last = messages[-1]
    if isinstance(last, ModelRequest):
        return [p for p in last.parts if isinstance(p, ToolReturnPart)]
    return []


def call(name: str, args: str, call_id: str) -> dict[int, DeltaToolCall]:
    return {0: DeltaToolCall(name=name, json_args=args, tool_call_id=call_id)}
