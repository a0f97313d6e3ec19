from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
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
    # aclosing: a closed subscription ends its watcher now, not when the collector runs.
    stream = streams.chat(info.context.runtime, user, session_id, content, metadata, idempotency_key)
    async with aclosing(stream) as events:
        async for event in events:
            info.context.fresh_loaders()
            yield event


async def session_events(
    info: Info, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncIterator[AgentEvent]:
    user = await info.context.authenticate()
    async with aclosing(
        streams.session_events(info.context.runtime, user, session_id, after_sequence)
    ) as events:
        async for event in events:
            info.context.fresh_loaders()
            yield event
