"""Notices between Parley processes (and the CLI) through PostgreSQL NOTIFY.

Sent inside the transaction that makes them true, so every process hears them exactly when the
change is visible. Each live process LISTENs on these channels on its runtime connection:

* ``parley_cancel``: a run id; its owner stops it.
* ``parley_control``: JSON ``{"user_gone": id, "reason": ...}`` (close the user's sockets),
  ``{"sessions_deleted": [ids]}`` (end the subscriptions watching them) or
  ``{"watching": [ids], "owner": key}`` (a process watches these sessions: their runs' owners
  flush their events for it; renewed every few seconds while it watches).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import asyncpg

CANCEL_CHANNEL = "parley_cancel"
CONTROL_CHANNEL = "parley_control"
_IDS_PER_NOTICE = 150  # ~5.5 KB of ids: well under NOTIFY's 8,000-byte payload limit


async def cancel_run(conn: asyncpg.Connection, run_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, str(run_id))


async def user_gone(conn: asyncpg.Connection, user_id: uuid.UUID, reason: str) -> None:
    payload = json.dumps({"user_gone": str(user_id), "reason": reason})
    await conn.execute("SELECT pg_notify($1, $2)", CONTROL_CHANNEL, payload)


async def sessions_deleted(conn: asyncpg.Connection, session_ids: list[uuid.UUID]) -> None:
    for start in range(0, len(session_ids), _IDS_PER_NOTICE):
        chunk = [str(s) for s in session_ids[start : start + _IDS_PER_NOTICE]]
        await conn.execute(
            "SELECT pg_notify($1, $2)", CONTROL_CHANNEL, json.dumps({"sessions_deleted": chunk})
        )


async def watching(conn: asyncpg.Connection, owner_key: int, session_ids: list[uuid.UUID]) -> None:
    for start in range(0, len(session_ids), _IDS_PER_NOTICE):
        chunk = [str(s) for s in session_ids[start : start + _IDS_PER_NOTICE]]
        payload = json.dumps({"watching": chunk, "owner": owner_key})
        await conn.execute("SELECT pg_notify($1, $2)", CONTROL_CHANNEL, payload)


@dataclass
class ControlNotice:
    user_gone: uuid.UUID | None = None
    reason: str = ""
    sessions_deleted: list[uuid.UUID] = field(default_factory=list)
    watching: list[uuid.UUID] = field(default_factory=list)
    owner: int | None = None  # the process that watches


def parse_control(payload: str) -> ControlNotice:
    data = json.loads(payload)
    notice = ControlNotice(reason=str(data.get("reason", "")))
    if "user_gone" in data:
        notice.user_gone = uuid.UUID(data["user_gone"])
    notice.sessions_deleted = [uuid.UUID(s) for s in data.get("sessions_deleted", [])]
    notice.watching = [uuid.UUID(s) for s in data.get("watching", [])]
    owner = data.get("owner")
    notice.owner = owner if isinstance(owner, int) else None
    return notice
