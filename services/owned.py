"""The caller's own rows: someone else's session is indistinguishable from a missing one."""

from __future__ import annotations

import uuid

from models import Session, User
from services.errors import NotFound


async def require_session(user: User, session_id: uuid.UUID) -> Session:
    session = await Session.get_or_none(id=session_id, user_id=user.id)
    if session is None:
        raise NotFound.of("session", session_id)
    return session
