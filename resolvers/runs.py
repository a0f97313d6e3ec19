from __future__ import annotations

import uuid

import strawberry

from models import Message, Run
from resolvers.context import Context
from services import runs


async def message(info: strawberry.Info[Context, None], message_id: uuid.UUID | None) -> Message | None:
    if message_id is None:
        return None
    return await info.context.loaders.message.load(message_id)


async def active_run(info: strawberry.Info[Context, None], session_id: uuid.UUID) -> Run | None:
    return await info.context.loaders.active_run.load(session_id)


async def run(info: strawberry.Info[Context, None], id: uuid.UUID) -> Run | None:
    return await runs.find_run(info.context.user, id)


async def cancel_run(info: strawberry.Info[Context, None], id: uuid.UUID) -> Run:
    return await runs.cancel_run(info.context.runtime, info.context.user, id)


async def send_message(
    info: strawberry.Info[Context, None],
    session_id: uuid.UUID,
    content: str,
    metadata: object | None,
    idempotency_key: str | None,
) -> runs.TurnResult:
    return await runs.send_message(
        info.context.runtime, info.context.user, session_id, content, metadata, idempotency_key
    )
