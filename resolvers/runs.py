from __future__ import annotations

import uuid
from typing import Any

from resolvers import mapping
from resolvers.context import Context
from schema.payloads import SendMessagePayload
from schema.run import Run
from schema.tools import ApprovalDecision
from services import runs
from services.runs.approvals import Decision, resolve_approvals


async def run(ctx: Context, id: uuid.UUID) -> Run | None:
    found = await runs.find_run(ctx.user, id)
    return mapping.run(found) if found is not None else None


async def cancel_run(ctx: Context, id: uuid.UUID) -> Run:
    return mapping.run(await runs.cancel_run(ctx.runtime, ctx.user, id))


async def send_message(
    ctx: Context,
    session_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> SendMessagePayload:
    ask = runs.Ask(content, metadata, idempotency_key, attachments=tuple(attachments or ()))
    return mapping.turn(await runs.send(ctx.runtime, ctx.user, session_id, ask))


async def edit_message(
    ctx: Context,
    message_id: uuid.UUID,
    content: str,
    metadata: Any,
    idempotency_key: str | None,
    attachments: list[uuid.UUID] | None = None,
) -> SendMessagePayload:
    ask = runs.Ask(content, metadata, idempotency_key, edit=message_id, attachments=tuple(attachments or ()))
    return mapping.turn(await runs.send(ctx.runtime, ctx.user, None, ask))


async def regenerate(ctx: Context, message_id: uuid.UUID, idempotency_key: str | None) -> SendMessagePayload:
    ask = runs.Ask(None, None, idempotency_key, again=message_id)
    return mapping.turn(await runs.send(ctx.runtime, ctx.user, None, ask))


async def resolve(ctx: Context, run_id: uuid.UUID, decisions: list[ApprovalDecision]) -> Run:
    given = [Decision(d.tool_call_id, d.approve, d.message, d.arguments) for d in decisions]
    return mapping.run(await resolve_approvals(ctx.runtime, ctx.user, run_id, given))
