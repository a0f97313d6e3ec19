from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from resolvers import mapping
from resolvers.context import Context
from schema.events import AgentEvent
from services import runs, streams


async def chat(
    ctx: Context,
    session_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> AsyncGenerator[AgentEvent]:
    ask = runs.Ask(content, metadata, idempotency_key, attachments=tuple(attachments or ()))
    async for event in _stream(ctx, session_id, ask):
        yield event


def edit_message(
    ctx: Context,
    message_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> AsyncGenerator[AgentEvent]:
    ask = runs.Ask(content, metadata, idempotency_key, edit=message_id, attachments=tuple(attachments or ()))
    return _stream(ctx, None, ask)


def regenerate(
    ctx: Context, message_id: uuid.UUID, idempotency_key: str | None
) -> AsyncGenerator[AgentEvent]:
    return _stream(ctx, None, runs.Ask(None, None, idempotency_key, again=message_id))


async def _stream(ctx: Context, session_id: uuid.UUID | None, ask: runs.Ask) -> AsyncGenerator[AgentEvent]:
    """A turn's run streamed (for editMessage / regenerate the message names the session)."""
    user = await ctx.authenticate()
    metrics = ctx.runtime.metrics
    with metrics.subscription():
        # aclosing: a closed subscription ends its watcher now, not when the collector runs.
        async with aclosing(streams.chat(ctx.runtime, user, session_id, ask)) as source:
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
