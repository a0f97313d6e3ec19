"""Live agent events for subscriptions (chat, sessionEvents)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from models import User
from services.errors import ParleyError
from services.events import AgentEvent


class NotYetAvailable(ParleyError):
    code = "NOT_IMPLEMENTED"


async def chat(
    user: User, session_id: uuid.UUID, content: str, metadata: Any, idempotency_key: str | None
) -> AsyncIterator[AgentEvent]:
    raise NotYetAvailable("chat streaming is not available yet")
    yield  # pragma: no cover


async def session_events(
    user: User, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncIterator[AgentEvent]:
    raise NotYetAvailable("sessionEvents streaming is not available yet")
    yield  # pragma: no cover
