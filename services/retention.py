"""Deleting inactive sessions."""

from __future__ import annotations

from models import User
from services.errors import ParleyError


async def cleanup_as(user: User, inactive_days: int) -> int:
    raise ParleyError("cleanupSessions is not available yet")
