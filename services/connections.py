"""Open WebSocket connections per user, counted across every process in PostgreSQL.

A row per open socket (``ws_connections``) with the owner key of the process holding it; rows
of dead processes (their advisory lock is gone) do not count and are swept at start. Opening
takes a per-user transaction lock, so concurrent opens on several processes cannot overshoot
the limit. Each process also keeps its own sockets' closers, to close a user's sockets at once
when their tokens are revoked or the user is deleted (a notification reaches every process).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from services.database import acquire
from services.errors import TooManyConnections
from services.liveness import LIVE_OWNERS_SQL

log = logging.getLogger("parley.connections")

Closer = Callable[[str], Awaitable[None]]


class Connections:
    """This process's open sockets, and the per-user limit over all processes."""

    def __init__(self, owner_key: int, max_per_user: int) -> None:
        self.owner_key = owner_key
        self.max_per_user = max_per_user
        self._closers: dict[uuid.UUID, dict[uuid.UUID, Closer]] = defaultdict(dict)

    async def open(self, user_id: uuid.UUID, close: Closer) -> uuid.UUID:
        """Count a new socket of ``user_id``; :class:`TooManyConnections` past the limit."""
        slot = uuid.uuid4()
        async with acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", str(user_id))
            inserted = await conn.fetchval(
                f"""INSERT INTO ws_connections (id, user_id, owner_key, opened_at)
                    SELECT $1, $2, $3, now()
                    WHERE (SELECT count(*) FROM ws_connections
                           WHERE user_id = $2 AND owner_key IN ({LIVE_OWNERS_SQL})) < $4
                    RETURNING id""",
                slot,
                user_id,
                self.owner_key,
                self.max_per_user,
            )
        if inserted is None:
            raise TooManyConnections(
                f"this user already has {self.max_per_user} open connections "
                "(PARLEY_MAX_CONNECTIONS_PER_USER); close one first"
            )
        self._closers[user_id][slot] = close
        return slot

    async def release(self, user_id: uuid.UUID, slot: uuid.UUID) -> None:
        closers = self._closers.get(user_id)
        if closers is not None:
            closers.pop(slot, None)
            if not closers:
                del self._closers[user_id]
        async with acquire() as conn:
            await conn.execute("DELETE FROM ws_connections WHERE id = $1", slot)

    async def close_user(self, user_id: uuid.UUID, reason: str) -> None:
        """Close every socket of ``user_id`` held by this process."""
        closers = list(self._closers.get(user_id, {}).values())
        for close in closers:
            try:
                await close(reason)
            except Exception:  # a socket that is already going away
                log.debug("closing a socket of user %s failed", user_id, exc_info=True)


async def sweep_dead() -> int:
    """Forget sockets of processes that are gone (their rows no longer count anyway)."""
    async with acquire() as conn:
        result = await conn.execute(f"DELETE FROM ws_connections WHERE owner_key NOT IN ({LIVE_OWNERS_SQL})")
    return int(result.split()[-1])
