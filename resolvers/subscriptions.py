from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from resolvers import mapping
from resolvers.context import Context
from schema.events import AgentEvent
from services import streams


async def chat(
    ctx: Context, session_id: uuid.UUID, content: str, metadata: Any, idempotency_key: str | None
) -> AsyncGenerator[AgentEvent]:
    user = await ctx.authenticate()
    metrics = ctx.runtime.metrics
    # aclosing: a closed subscription ends its watcher now, not when the collector runs.
    with metrics.subscription():
        async with aclosing(
            streams.chat(ctx.runtime, user, session_id, content, metadata, idempotency_key)
        ) as source:
            async for event in source:
                ctx.fresh_loaders()
                metrics.event_delivered()
                yield mapping.event(event)


async def session_events(
    ctx: Context, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncGenerator[AgentEvent]:
    user = await ctx.authenticate()
    metrics = ctx.runtime.metrics
    with metrics.subscription():
        async with aclosing(streams.session_events(ctx.runtime, user, session_id, after_sequence)) as source:
            async for event in source:
                ctx.fresh_loaders()
                metrics.event_delivered()
                yield mapping.event(event)
