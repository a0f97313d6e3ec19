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
    user = await ctx.authenticate()
    # aclosing: a closed subscription ends its watcher now, not when the collector runs.
    ask = runs.Ask(content, metadata, idempotency_key, attachments=tuple(attachments or ()))
    async with aclosing(streams.chat(ctx.runtime, user, session_id, ask)) as source:
        async for event in source:
            ctx.fresh_loaders()
            yield mapping.event(event)


def edit_message(
    ctx: Context,
    message_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> AsyncGenerator[AgentEvent]:
    ask = runs.Ask(content, metadata, idempotency_key, edit=message_id, attachments=tuple(attachments or ()))
    return _branch(ctx, ask)


def regenerate(
    ctx: Context, message_id: uuid.UUID, idempotency_key: str | None
) -> AsyncGenerator[AgentEvent]:
    return _branch(ctx, runs.Ask(None, None, idempotency_key, again=message_id))


async def _branch(ctx: Context, ask: runs.Ask) -> AsyncGenerator[AgentEvent]:
    """editMessage / regenerate as subscriptions: the message names the session."""
    user = await ctx.authenticate()
    async with aclosing(streams.chat(ctx.runtime, user, None, ask)) as source:
        async for event in source:
            ctx.fresh_loaders()
            yield mapping.event(event)


async def session_events(
    ctx: Context, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncGenerator[AgentEvent]:
    user = await ctx.authenticate()
    async with aclosing(streams.session_events(ctx.runtime, user, session_id, after_sequence)) as source:
        async for event in source:
            ctx.fresh_loaders()
            yield mapping.event(event)
