"""Deleting inactive sessions: on demand (admin mutation, CLI) and periodically in the background.

A session is inactive for N days when its ``last_activity_at`` is older than ``now() - N days``.
It goes with its messages, runs and SESSION-scoped memory. Sessions with a RUNNING run are kept.

Deletion works in batches of :data:`BATCH_SIZE` sessions, each in its own short transaction
(rows picked with ``FOR UPDATE SKIP LOCKED``), so no table is locked for long and a session
being written to right now is skipped rather than waited for.

With ``PARLEY_RETENTION_DAYS`` set, :func:`sweep_forever` (a task of the runtime) sweeps every
``PARLEY_RETENTION_INTERVAL`` seconds in every process; a sweep first takes a PostgreSQL
advisory lock (``pg_try_advisory_lock``, held on the sweep's connection for the sweep only) and
is skipped while another process of the group holds it.

Attachments no message has referred to for a day are deleted by :func:`sweep_attachments_forever`,
which every process runs (``PARLEY_RETENTION_DAYS`` or not) under an advisory lock of its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from models import User
from services import attachments, notices
from services.database import acquire
from services.errors import BadInput, Forbidden

log = logging.getLogger("parley.retention")

BATCH_SIZE = 200  # sessions per transaction at most
BATCH_MESSAGES = 20_000  # ... and about this many messages (a bigger session goes alone)
MAX_DAYS = 36500
# pg_try_advisory_lock(int, int) keys: the two-int form cannot clash with the bigint keys
# used elsewhere (run owners, migrations).
LOCK_CLASS = 0x504C5259  # "PLRY"
LOCK_RETENTION = 1
LOCK_ATTACHMENTS = 2
ATTACHMENT_GRACE_S = 86400.0  # an attachment no message refers to is kept a day (an upload not sent yet)
ATTACHMENT_BATCH = 500

_PICK_SQL = """
SELECT s.id, s.message_count FROM sessions s
WHERE s.last_activity_at < now() - make_interval(days => $1::int)
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session_id = s.id AND r.status = 'running')
ORDER BY s.last_activity_at
LIMIT $2
FOR UPDATE OF s SKIP LOCKED
"""


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise BadInput(f"inactiveDays must be between 1 and {MAX_DAYS}")
    return days


async def cleanup(inactive_days: int, batch_size: int = BATCH_SIZE) -> int:
    """Delete sessions with no activity for ``inactive_days`` days; return how many went."""
    check_days(inactive_days)
    async with acquire() as conn:
        return await _cleanup_on(conn, inactive_days, batch_size)


async def _cleanup_on(conn: asyncpg.Connection, inactive_days: int, batch_size: int = BATCH_SIZE) -> int:
    total = 0
    while (deleted := await _delete_batch(conn, inactive_days, batch_size)) > 0:
        total += deleted
    return total


async def _delete_batch(conn: asyncpg.Connection, inactive_days: int, batch_size: int) -> int:
    """One short transaction; 0 when nothing (unlocked) is left to delete."""
    async with conn.transaction():
        picked = await conn.fetch(_PICK_SQL, inactive_days, batch_size)
        ids: list[uuid.UUID] = []
        messages = 0
        for row in picked:
            if ids and messages + row["message_count"] > BATCH_MESSAGES:
                break  # the rest stay for the next batch (their row locks end with this one)
            ids.append(row["id"])
            messages += row["message_count"]
        if not ids:
            return 0
        # Children first (explicitly, the cascades then find nothing left), then the sessions.
        attached = await attachments.of_sessions(conn, ids)
        await conn.execute("DELETE FROM messages WHERE session_id = ANY($1::uuid[])", ids)
        await conn.execute("DELETE FROM runs WHERE session_id = ANY($1::uuid[])", ids)
        await conn.execute("DELETE FROM memory_entries WHERE session_id = ANY($1::uuid[])", ids)
        status = await conn.execute("DELETE FROM sessions WHERE id = ANY($1::uuid[])", ids)
        await attachments.drop_unreferenced(conn, attached)  # as deleteSession does
        await notices.sessions_deleted(conn, ids)
    return int(status.split()[-1])


async def cleanup_as(user: User, inactive_days: int) -> int:
    """``cleanupSessions``: admins only."""
    if not user.is_admin:
        raise Forbidden("only admins may clean up sessions")
    return await cleanup(inactive_days)


@dataclass
class Sweeper:
    """What the background task has done so far (observable by tests and operators)."""

    sweeps: int = 0  # sweeps this process ran (it held the lock)
    skipped: int = 0  # attempts while another process held the lock
    failures: int = 0
    deleted: int = 0


async def sweep_once(inactive_days: int, state: Sweeper | None = None) -> int | None:
    """One sweep under the group-wide advisory lock; ``None`` when another process holds it."""
    check_days(inactive_days)
    deleted = await _sweep(LOCK_RETENTION, state, lambda conn: _cleanup_on(conn, inactive_days))
    if deleted:
        log.info("retention: deleted %d sessions inactive for %d days", deleted, inactive_days)
    return deleted


async def sweep_attachments(state: Sweeper | None = None, grace_s: float = ATTACHMENT_GRACE_S) -> int | None:
    """Delete attachments no message has referred to for ``grace_s`` seconds (one process at a
    time, like session sweeps); ``None`` when another process is sweeping them."""

    async def unreferenced(conn: asyncpg.Connection) -> int:
        # References that went by a way that did not mark them (a user deleted, say) count from now.
        await attachments.mark_unreferenced(conn)
        deleted = 0
        while True:
            picked, gone = await attachments.delete_unreferenced(conn, grace_s, ATTACHMENT_BATCH)
            deleted += gone
            if picked < ATTACHMENT_BATCH:
                return deleted

    deleted = await _sweep(LOCK_ATTACHMENTS, state, unreferenced)
    if deleted:
        log.info("retention: deleted %d attachments no message referred to for a day", deleted)
    return deleted


async def _sweep(
    key: int, state: Sweeper | None, work: Callable[[asyncpg.Connection], Awaitable[int]]
) -> int | None:
    """``work`` under the group-wide advisory lock ``key``; ``None`` when another process holds it.

    One connection for the whole sweep: it holds the session-level lock and runs the batches.
    """
    state = state if state is not None else Sweeper()
    async with acquire() as conn:
        got = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, key)
        if not got:
            state.skipped += 1
            return None
        try:
            deleted = await work(conn)
        finally:
            await _unlock(conn, key)
    state.sweeps += 1
    state.deleted += deleted
    return deleted


async def _unlock(conn: asyncpg.Connection, key: int) -> None:
    """Pooled connections go back without any session state (the pool only rolls back), so
    the lock must be released here; if that fails, the connection is closed, which releases it."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, key)
    except BaseException:
        conn.terminate()
        raise


async def sweep_forever(days: int, interval: float, state: Sweeper) -> None:
    """Background task: a sweep every ``interval`` seconds (the first at once).

    Every process may run this; a sweep takes a PostgreSQL advisory lock first and is skipped
    when another process of the group is sweeping.
    """
    check_days(days)
    await _repeat(lambda: sweep_once(days, state), interval, state, "retention sweep")


async def sweep_attachments_forever(interval: float, state: Sweeper) -> None:
    """Background task of every process, whatever PARLEY_RETENTION_DAYS says: a sweep of
    unreferenced attachments every ``interval`` seconds (the first at once)."""
    await _repeat(lambda: sweep_attachments(state), interval, state, "attachment sweep")


async def _repeat(
    sweep: Callable[[], Awaitable[int | None]], interval: float, state: Sweeper, what: str
) -> None:
    while True:
        try:
            await sweep()
        except asyncio.CancelledError:
            raise
        except Exception:
            state.failures += 1
            log.exception("%s failed; retrying in %.0f s", what, interval)
        await asyncio.sleep(interval)
