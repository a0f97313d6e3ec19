"""The memory block reaches the model with every request, and never its stored history.

A wrapper around the agent's model adds the user's current memory entries to the instructions
of each request it sends. pydantic-ai records a request's instructions before the model sees
them, so the stored turns keep the agent's own instructions only: history stays the size of
what was said, however large memory grows, and each request reads memory afresh.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from pydantic_ai.messages import InstructionPart, ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from models import MemoryScope
from services import memory


class MemoryModel(WrapperModel):
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
