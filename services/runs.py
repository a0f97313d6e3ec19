"""Agent runs: one reply of the session's agent to a user message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from models import Message, Run, RunStatus, Session, User
from services.errors import NotFound, ParleyError
from services.sessions import require_session


@dataclass
class TurnResult:
    run: Run
    user_message: Message
    reply: Message | None
    messages: list[Message]


async def find_run(user: User, run_id: uuid.UUID) -> Run | None:
    return await Run.get_or_none(id=run_id, session__user_id=user.id)


async def active_runs_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, Run]:
    rows = await Run.filter(session_id__in=session_ids, status=RunStatus.RUNNING)
    return {r.session_id: r for r in rows}


async def send_message(
    user: User, session_id: uuid.UUID, content: str, metadata: Any, idempotency_key: str | None
) -> TurnResult:
    await require_session(user, session_id)
    raise ParleyError("sendMessage is not available yet")


async def cancel_run(user: User, run_id: uuid.UUID) -> Run:
    run = await find_run(user, run_id)
    if run is None:
        raise NotFound.of("run", run_id)
    raise ParleyError("cancelRun is not available yet")


async def delete_session(user: User, session_id: uuid.UUID) -> bool:
    session = await require_session(user, session_id)
    deleted = await Session.filter(id=session.id).delete()
    return deleted > 0
