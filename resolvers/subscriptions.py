from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

from models import User
from resolvers import mapping
from resolvers.context import Context
from schema.events import AgentEvent
from services import events, runs, streams

# Each function returns the generator that delivers the events: no generator layer more per event.


def chat(
    ctx: Context,
    session_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> AsyncGenerator[AgentEvent]:
    ask = runs.Ask(content, metadata, idempotency_key, attachments=tuple(attachments or ()))
    return _delivered(ctx, lambda user: streams.chat(ctx.runtime, user, session_id, ask))


def edit_message(
    ctx: Context,
    message_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> AsyncGenerator[AgentEvent]:
    ask = runs.Ask(content, metadata, idempotency_key, edit=message_id, attachments=tuple(attachments or ()))
    return _delivered(
        ctx, lambda user: streams.chat(ctx.runtime, user, None, ask)
    )  # the message names the session


def regenerate(
    ctx: Context, message_id: uuid.UUID, idempotency_key: str | None
) -> AsyncGenerator[AgentEvent]:
    ask = runs.Ask(None, None, idempotency_key, again=message_id)
    return _delivered(ctx, lambda user: streams.chat(ctx.runtime, user, None, ask))


def session_events(
    ctx: Context, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncGenerator[AgentEvent]:
    return _delivered(ctx, lambda user: streams.session_events(ctx.runtime, user, session_id, after_sequence))


async def _delivered(
    ctx: Context, open_stream: Callable[[User], AsyncGenerator[events.AgentEvent]]
) -> AsyncGenerator[AgentEvent]:
    """The caller's stream, each event mapped to its GraphQL type and counted."""
    user = await ctx.authenticate()
    metrics = ctx.runtime.metrics
    with metrics.subscription():
        # aclosing: a closed subscription ends its watcher now, not when the collector runs.
        async with aclosing(open_stream(user)) as source:
            async for event in source:
                ctx.fresh_loaders()
                metrics.event_delivered()
                yield mapping.event(event)
