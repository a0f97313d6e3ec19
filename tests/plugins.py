"""Scripted models for Parley server processes started by the tests (PARLEY_PLUGINS=tests.plugins).

The slow models stand in for a provider that takes time; the tests never sleep to synchronise,
they wait for events or states they can observe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from pydantic_ai.models.function import AgentInfo, DeltaThinkingPart, DeltaToolCall, FunctionModel

from services.llm import ModelRegistry
from tests.scripted import last_user_text, tool_returns


async def fast200(messages: Any, info: AgentInfo) -> AsyncIterator[Any]:
    """200 text deltas at once (the streaming benchmark's model)."""
    for i in range(200):
        yield f"w{i} "


async def slow(messages: Any, info: AgentInfo) -> AsyncIterator[Any]:
    """A long reply at a provider's pace: 'w0 w1 ...', one word every 20 ms (up to 60 s)."""
    words = (
        int(last_user_text(messages).split()[-1]) if last_user_text(messages).split()[-1].isdigit() else 3000
    )
    for i in range(words):
        yield f"w{i} "
        await asyncio.sleep(0.02)


async def tools(messages: Any, info: AgentInfo) -> AsyncIterator[Any]:
    """Thinks, saves a memory with a tool, then answers."""
    if not tool_returns(messages):
        yield {0: DeltaThinkingPart(content="let me note that")}
    if not tool_returns(messages):
        args = '{"key": "topic", "value": "streams", "scope": "session"}'
        yield {1: DeltaToolCall(name="save_memory", json_args=args, tool_call_id="t1")}
    else:
        yield "Saved "
        yield "it."


async def big(messages: Any, info: AgentInfo) -> AsyncIterator[Any]:
    """Large text at once: too big to travel inline in a notification."""
    for i in range(6):
        yield f"[{i}]" + "x" * 1500


async def flood(messages: Any, info: AgentInfo) -> AsyncIterator[Any]:
    """16 MiB of text as fast as it goes: more than any subscriber may hold queued."""
    chunk = "y" * (256 * 1024)
    for _ in range(64):
        yield chunk
        await asyncio.sleep(0)  # let the event loop deliver between chunks


MODELS = {
    "script:fast200": fast200,
    "script:flood": flood,
    "script:big": big,
    "script:slow": slow,
    "script:tools": tools,
}


def register_models(models: ModelRegistry) -> None:
    for name, fn in MODELS.items():
        models.register(name, partial(FunctionModel, stream_function=fn, model_name=name))
