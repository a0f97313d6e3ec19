"""Which Parley processes are alive, and what happens to the runs of those that are not.

Each process holds a PostgreSQL session-level advisory lock, its *owner key*, on its runtime
connection for its whole life (``services/listener.py``); its running replies carry that key.
The lock goes away with the process (or its connection), so a RUNNING run whose key is not
held belongs to a process that can no longer finish it.

Every live process runs a reaper: every ``REAP_EVERY_S`` it ends such runs FAILED with code
``INTERRUPTED`` (one statement; exactly one process wins each run) and tells every process's
watchers through the usual event notifications, so ``activeRun`` and the streams learn of it
in seconds, not at the session's next use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

REAP_EVERY_S = 1.0
INTERRUPTED_MESSAGE = "the server process running this reply stopped before it finished"

# The owner keys held right now in this database.
LIVE_OWNERS_SQL = """SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


# Cheap check before reaping: most of the time no run is orphaned.
ANY_ORPHAN_SQL = f"""SELECT EXISTS (SELECT 1 FROM runs WHERE status = 'running'
    AND owner_key NOT IN ({LIVE_OWNERS_SQL}))"""


@dataclass(frozen=True)
class EndedRun:
    run_id: uuid.UUID
    session_id: uuid.UUID


async def owner_alive(conn: asyncpg.Connection, owner_key: int | None) -> bool:
    if owner_key is None:
        return False
    return bool(await conn.fetchval(f"SELECT $1::bigint IN ({LIVE_OWNERS_SQL})", owner_key))


async def mark_interrupted(conn: asyncpg.Connection, run_ids: list[uuid.UUID]) -> list[EndedRun]:
    """End these runs INTERRUPTED if they are still RUNNING; the ones this call ended."""
    rows = await conn.fetch(
        """UPDATE runs SET status = 'failed', finished_at = now(), error_code = 'INTERRUPTED',
               error_message = $2
           WHERE id = ANY($1) AND status = 'running' RETURNING id, session_id""",
        run_ids,
        INTERRUPTED_MESSAGE,
    )
    return [EndedRun(r["id"], r["session_id"]) for r in rows]


async def reap(conn: asyncpg.Connection) -> list[EndedRun]:
    """End the RUNNING runs of every dead process; the runs this call ended."""
    rows = await conn.fetch(
        f"""UPDATE runs SET status = 'failed', finished_at = now(), error_code = 'INTERRUPTED',
               error_message = $1
           WHERE status = 'running' AND owner_key NOT IN ({LIVE_OWNERS_SQL})
           RETURNING id, session_id""",
        INTERRUPTED_MESSAGE,
    )
    return [EndedRun(r["id"], r["session_id"]) for r in rows]


KEPT_TEXT_MINUTES = 10  # a lagging receiver reads a text range long before this


async def forget_kept_text(conn: asyncpg.Connection) -> None:
    """Drop the streamed text that ended runs kept for late readers of their notifications."""
    await conn.execute(
        f"""UPDATE runs SET partial_text = '' WHERE partial_text <> '' AND status <> 'running'
            AND finished_at < now() - interval '{KEPT_TEXT_MINUTES} minutes'"""
    )
