from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import strawberry

from resolvers.context import Context
from services import streams
from services.events import AgentEvent

Info = strawberry.Info[Context, None]


async def chat(
    info: Info, session_id: uuid.UUID, content: str, metadata: Any, idempotency_key: str | None
) -> AsyncIterator[AgentEvent]:
    user = await info.context.authenticate()
    async for event in streams.chat(user, session_id, content, metadata, idempotency_key):
        info.context.fresh_loaders()
        yield event


async def session_events(
    info: Info, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncIterator[AgentEvent]:
    user = await info.context.authenticate()
    async for event in streams.session_events(user, session_id, after_sequence):
        info.context.fresh_loaders()
        yield event
