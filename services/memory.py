"""Memory: key-value facts per user (all sessions) or per session."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from tortoise.expressions import Q

from models import MemoryEntry, MemoryScope, User
from services.database import acquire
from services.errors import BadInput
from services.limits import Limits, short_text
from services.owned import require_session
from services.settings import Settings

_MAX_KEY = 200


@dataclass(frozen=True)
class MemoryBounds:
    """How much one user may remember, all scopes together (PARLEY_MAX_MEMORY_*)."""

    entries: int
    size: int  # bytes of keys and values

    @classmethod
    def of(cls, settings: Settings) -> MemoryBounds:
        return cls(settings.max_memory_entries, settings.max_memory_bytes)


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > _MAX_KEY:
        raise BadInput(f"a memory key has 1 to {_MAX_KEY} characters")
    return short_text(key, "key", _MAX_KEY)


async def _scope_session(user: User, scope: MemoryScope, session_id: uuid.UUID | None) -> uuid.UUID | None:
    if scope is MemoryScope.SESSION:
        if session_id is None:
            raise BadInput("SESSION scope needs a sessionId")
        return (await require_session(user, session_id)).id
    if session_id is not None:
        raise BadInput("USER scope takes no sessionId")
    return None


async def list_memory(user: User, scope: MemoryScope, session_id: uuid.UUID | None) -> list[MemoryEntry]:
    sid = await _scope_session(user, scope, session_id)
    query = MemoryEntry.filter(user_id=user.id, scope=scope)
    if sid is not None:
        query = query.filter(session_id=sid)
    return await query.order_by("key")


async def save_memory(
    user: User,
    key: str,
    value: Any,
    scope: MemoryScope,
    session_id: uuid.UUID | None,
    limits: Limits,
    bounds: MemoryBounds,
) -> MemoryEntry:
    key = check_key(key)
    limits.json_value(value, "value")
    sid = await _scope_session(user, scope, session_id)
    return await upsert(user.id, sid, key, value, bounds)


async def upsert(
    user_id: uuid.UUID, session_id: uuid.UUID | None, key: str, value: Any, bounds: MemoryBounds
) -> MemoryEntry:
    """Insert or replace one entry atomically (a partial unique index per scope).

    A user's memory, all scopes together, holds at most PARLEY_MAX_MEMORY_ENTRIES entries and
    PARLEY_MAX_MEMORY_BYTES (keys and values): past either the write is refused and undone.
    The user's row lock serialises their writers, so concurrent saves cannot overshoot.
    """
    scope = MemoryScope.SESSION if session_id is not None else MemoryScope.USER
    target = (
        "(session_id, key) WHERE scope = 'session'" if session_id else ("(user_id, key) WHERE scope = 'user'")
    )
    async with acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
        row = await conn.fetchrow(
            f"""
            INSERT INTO memory_entries (id, user_id, session_id, scope, key, value,
                                        created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, now(), now())
            ON CONFLICT {target}
            DO UPDATE SET value = EXCLUDED.value, updated_at = now()
            RETURNING id
            """,
            uuid.uuid4(),
            user_id,
            session_id,
            scope.value,
            key,
            json.dumps(value),
        )
        assert row is not None
        await enforce_bounds(conn, user_id, bounds)
    return await MemoryEntry.get(id=row["id"])


async def enforce_bounds(conn: asyncpg.Connection, user_id: uuid.UUID, bounds: MemoryBounds) -> None:
    """After a write, in its transaction (holding the user's row): refuse it past the bounds."""
    totals = await conn.fetchrow(
        """SELECT count(*) AS entries, coalesce(sum(octet_length(key) + octet_length(value::text)), 0) AS size
           FROM memory_entries WHERE user_id = $1""",
        user_id,
    )
    assert totals is not None
    if totals["entries"] > bounds.entries:
        raise BadInput(
            f"memory is full: at most {bounds.entries} entries per user "
            "(PARLEY_MAX_MEMORY_ENTRIES); delete some first"
        )
    if totals["size"] > bounds.size:
        raise BadInput(
            f"memory is full: at most {bounds.size} bytes of keys and values per user "
            "(PARLEY_MAX_MEMORY_BYTES); delete some first"
        )


async def delete_memory(user: User, key: str, scope: MemoryScope, session_id: uuid.UUID | None) -> bool:
    sid = await _scope_session(user, scope, session_id)
    return await remove(user.id, sid, check_key(key))


async def remove(user_id: uuid.UUID, session_id: uuid.UUID | None, key: str) -> bool:
    scope = MemoryScope.SESSION if session_id is not None else MemoryScope.USER
    query = MemoryEntry.filter(user_id=user_id, scope=scope, key=key)
    if session_id is not None:
        query = query.filter(session_id=session_id)
    return await query.delete() > 0


async def clear_memory(user: User, scope: MemoryScope | None, session_id: uuid.UUID | None) -> int:
    """No scope: everything of the user (or of one session when sessionId is given)."""
    query = MemoryEntry.filter(user_id=user.id)
    if session_id is not None:
        if scope is MemoryScope.USER:
            raise BadInput("USER scope takes no sessionId")
        query = query.filter(session_id=(await require_session(user, session_id)).id)
    if scope is not None:
        query = query.filter(scope=scope)
    return await query.delete()


async def session_memory_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[MemoryEntry]]:
    """SESSION entries of many sessions at once (Session.memory through a DataLoader)."""
    found: dict[uuid.UUID, list[MemoryEntry]] = {sid: [] for sid in session_ids}
    rows = await MemoryEntry.filter(session_id__in=session_ids, scope=MemoryScope.SESSION).order_by("key")
    for row in rows:
        found[row.session_id].append(row)
    return found


async def entries_for_model(user_id: uuid.UUID, session_id: uuid.UUID) -> list[MemoryEntry]:
    """What the model is told it remembers: the user's entries and this session's."""
    return await MemoryEntry.filter(
        Q(user_id=user_id, scope=MemoryScope.USER) | Q(session_id=session_id, scope=MemoryScope.SESSION)
    ).order_by("scope", "key")
