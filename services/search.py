"""Full-text search over the caller's messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from models import Message, Session, User
from services.errors import ParleyError


@dataclass
class Hit:
    message: Message
    session: Session
    snippet: str
    rank: float


async def search_messages(user: User, query: str, first: int, session_id: uuid.UUID | None) -> list[Hit]:
    raise ParleyError("searchMessages is not available yet")
