"""The pydantic-ai agent a run drives: its dependencies, the memory tools and the memory block.

Agents are built once per runtime; the model, instructions and caller are given per run. The
memory block reaches the model with every request through a wrapper around the model, never
through the run's messages: pydantic-ai records a request's instructions before the model sees
them, so stored turns keep the agent's own instructions only and history stays the size of
what was said, however large memory grows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import DeferredToolRequests, RunContext
from pydantic_ai.messages import InstructionPart, ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import FunctionToolset

from models import MemoryScope
from services import memory
from services.errors import BadInput
from services.limits import Limits

Scope = Literal["user", "session"]


@dataclass(frozen=True)
class RunDeps:
    """What a run's tools may touch: the memory of the user who sent the message (USER scope)
    and of the session the run belongs to (SESSION scope), within the deployment's limits.
    Nothing else of the user, and nothing of other users."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    limits: Limits
    bounds: memory.MemoryBounds


async def save_memory(ctx: RunContext[RunDeps], key: str, value: Any, scope: Scope = "user") -> str:
    """Remember a fact. scope "user": for all of this user's sessions; "session": this one only."""
    deps = ctx.deps
    try:
        key = memory.check_key(key)
        deps.limits.json_value(value, "value")
        session_id = deps.session_id if scope == "session" else None
        await memory.upsert(deps.user_id, session_id, key, value, deps.bounds)
    except BadInput as exc:  # e.g. memory is full: the model can read why and act on it
        return f"not saved: {exc.message}"
    return f"saved {key!r} ({scope})"


async def delete_memory(ctx: RunContext[RunDeps], key: str, scope: Scope = "user") -> str:
    """Forget a fact saved with save_memory."""
    session_id = ctx.deps.session_id if scope == "session" else None
    removed = await memory.remove(ctx.deps.user_id, session_id, key.strip())
    return f"deleted {key!r} ({scope})" if removed else f"nothing saved under {key!r} ({scope})"


class Agents:
    """The pydantic-ai agent every run drives (built once: building one costs more than a run).

    A run brings its own toolsets (the memory tools, the agent's MCP servers) and ends with
    text, or with the tool calls waiting for a person's approval (``DeferredToolRequests``).
    """

    def __init__(self) -> None:
        self.agent: PydanticAgent[RunDeps, str | DeferredToolRequests] = PydanticAgent(
            deps_type=RunDeps, output_type=[str, DeferredToolRequests]
        )
        self.memory: FunctionToolset[RunDeps] = FunctionToolset([save_memory, delete_memory])


class MemoryModel(WrapperModel):
    """The agent's model, told the user's current memory with every request it sends."""

    def __init__(self, wrapped: Model | str, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        super().__init__(wrapped)
        self.user_id = user_id
        self.session_id = session_id

    async def _with_memory(self, params: ModelRequestParameters) -> ModelRequestParameters:
        block = InstructionPart(content=await remembered(self.user_id, self.session_id), dynamic=True)
        return replace(params, instruction_parts=[*(params.instruction_parts or []), block])

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        params = await self._with_memory(model_request_parameters)
        return await self.wrapped.request(messages, model_settings, params)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        params = await self._with_memory(model_request_parameters)
        async with self.wrapped.request_stream(messages, model_settings, params, run_context) as stream:
            yield stream


async def remembered(user_id: uuid.UUID, session_id: uuid.UUID) -> str:
    """What the model is told it remembers: the user's entries and this session's."""
    entries = await memory.entries_for_model(user_id, session_id)
    if not entries:
        return "You remember nothing yet. Use save_memory to remember facts worth keeping."
    lines = [
        f"- {e.key} ({'user' if e.scope == MemoryScope.USER else 'session'}): "
        f"{json.dumps(e.value, ensure_ascii=False)}"
        for e in entries
    ]
    return "What you remember (save_memory / delete_memory change it):\n" + "\n".join(lines)
