"""A session's transcript: appending rows with gap-free sequences, the busy check, reading rows back.

Everything that writes messages goes through :func:`append` inside a transaction that first
called :func:`lock_idle_session`, so writers of one session are serialised by its row lock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from models import Message, Role
from services.conversation import RowDraft, StoredRow
from services.errors import NotFound, RunGone, RunInProgress
from services.liveness import mark_interrupted, owner_alive
from services.titles import title_from

COLUMNS = (
    "id, session_id, sequence, role, content, tool_calls, tool_call_id, tool_name, run_id, model, "
    "requests, input_tokens, output_tokens, cost, processing_time_ms, metadata, model_message, "
    "part_group, created_at, parent_id"
)

_FIELDS = COLUMNS.split(", ")


@dataclass(slots=True)
class MessageRow:
    """A stored message read straight from its row.

    A plain object on purpose: Tortoise model instances are awaitable, and GraphQL awaits
    every awaitable field value, which made each message of a page cost a coroutine.
    """

    id: uuid.UUID
    session_id: uuid.UUID
    sequence: int
    role: Role
    content: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str | None
    tool_name: str | None
    run_id: uuid.UUID | None
    model: str | None
    requests: int | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    processing_time_ms: int | None
    metadata: dict[str, Any]
    model_message: str
    part_group: int | None
    created_at: datetime
    parent_id: uuid.UUID | None


AnyMessage = Message | MessageRow


def message_from_model(message: Message) -> MessageRow:
    """The plain form of a message the ORM loaded."""
    return MessageRow(*(getattr(message, name) for name in _FIELDS))


def message_from_record(rec: asyncpg.Record | dict[str, Any]) -> MessageRow:
    values = [rec[k] for k in _FIELDS]
    row = MessageRow(*values)
    row.role = Role(row.role)
    if isinstance(row.tool_calls, str):
        row.tool_calls = json.loads(row.tool_calls)
    if isinstance(row.metadata, str):
        row.metadata = json.loads(row.metadata)
    return row


async def lock_idle_session(conn: asyncpg.Connection, session_id: uuid.UUID) -> None:
    """Inside a transaction: lock the session row; fail if a live reply is running (or paused
    for approval: a paused run keeps its session until it is decided or cancelled).

    A RUNNING run whose owning process died (its advisory lock is gone) is marked
    INTERRUPTED here, so a crashed process never blocks a session, even before a reaper
    noticed.
    """
    row = await conn.fetchrow(
        """SELECT s.id, r.id AS run_id, r.owner_key, r.status FROM sessions s
           LEFT JOIN runs r ON r.session_id = s.id AND r.status IN ('running', 'waiting_approval')
           WHERE s.id = $1 FOR UPDATE OF s""",
        session_id,
    )
    if row is None:
        raise NotFound.of("session", session_id)
    if row["run_id"] is None:
        return
    if row["status"] == "waiting_approval" or await owner_alive(conn, row["owner_key"]):
        raise RunInProgress()
    await mark_interrupted(conn, [row["run_id"]])


async def append(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    drafts: list[RowDraft],
    *,
    run_id: uuid.UUID | None = None,
    processing_time_ms: int | None = None,
    guard_run: uuid.UUID | None = None,
) -> list[MessageRow]:
    """Append rows with the next sequences. Call inside a transaction.

    The session row update both hands out the sequences and serialises writers of one
    session, so sequences are gap-free and strictly increasing under any concurrency. With
    ``guard_run``, nothing is appended unless that run is still RUNNING (:class:`RunGone`):
    a run ended elsewhere (interrupted, force-cancelled, deleted) must not write on.
    """
    if not drafts:
        return []
    first_user = next((d.content for d in drafts if d.role is Role.USER), None)
    # The rows continue the active branch: the first follows the head, which moves to the last.
    moved = await conn.fetchrow(
        """UPDATE sessions s SET last_sequence = s.last_sequence + $2, message_count = s.message_count + $2,
               last_activity_at = now(), updated_at = now(),
               title = COALESCE(s.title, $3), head_id = $5
           FROM (SELECT head_id FROM sessions WHERE id = $1) before
           WHERE s.id = $1
             AND ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM runs WHERE id = $4 AND status = 'running'))
           RETURNING s.last_sequence, before.head_id""",
        session_id,
        len(drafts),
        title_from(first_user) if first_user else None,
        guard_run,
        drafts[-1].id,
    )
    if moved is None:
        if guard_run is not None:
            raise RunGone(f"run {guard_run} is no longer running")
        raise NotFound.of("session", session_id)
    start = moved["last_sequence"] - len(drafts) + 1
    parents = [moved["head_id"], *(d.id for d in drafts[:-1])]
    ids, seqs, groups = [], [], []
    group: int | None = None
    for i, d in enumerate(drafts):
        seq = start + i
        grouped_next = i + 1 < len(drafts) and drafts[i + 1].grouped
        if not d.grouped:
            group = seq if grouped_next else None
        ids.append(d.id)
        seqs.append(seq)
        groups.append(group)
    records = await conn.fetch(
        f"""
        INSERT INTO messages ({COLUMNS})
        SELECT u.id, $1, u.seq, u.role, u.content, u.tool_calls::jsonb, u.tool_call_id, u.tool_name,
               $2, u.model, u.requests, u.input_tokens, u.output_tokens, u.cost, $3,
               u.metadata::jsonb, u.model_message, u.part_group, clock_timestamp(), u.parent_id
        FROM unnest($4::uuid[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                    $11::text[], $12::int[], $13::int[], $14::int[], $15::float8[], $16::text[],
                    $17::text[], $18::int[], $19::uuid[])
             AS u(id, seq, role, content, tool_calls, tool_call_id, tool_name, model, requests,
                  input_tokens, output_tokens, cost, metadata, model_message, part_group, parent_id)
        RETURNING {COLUMNS}
        """,
        session_id,
        run_id,
        processing_time_ms,
        ids,
        seqs,
        [d.role.value for d in drafts],
        [d.content for d in drafts],
        [json.dumps(d.tool_calls) for d in drafts],
        [d.tool_call_id for d in drafts],
        [d.tool_name for d in drafts],
        [d.model for d in drafts],
        [d.usage["requests"] if d.usage else None for d in drafts],
        [d.usage["input_tokens"] if d.usage else None for d in drafts],
        [d.usage["output_tokens"] if d.usage else None for d in drafts],
        [d.cost for d in drafts],
        [json.dumps(d.metadata) for d in drafts],
        [d.model_message_json for d in drafts],
        groups,
        parents,
    )
    return sorted((message_from_record(r) for r in records), key=lambda m: m.sequence)


def stored_row(rec: asyncpg.Record) -> StoredRow:
    return StoredRow(rec["sequence"], Role(rec["role"]), rec["part_group"], rec["model_message"])


async def stored_rows(conn: asyncpg.Connection, session_id: uuid.UUID, limit: int) -> list[StoredRow]:
    """The newest ``limit`` rows, oldest first, plus older SYSTEM rows.

    Keyset from the newest: reads only what the window needs, whatever the session's size.
    """
    recs = await conn.fetch(
        """(SELECT sequence, role, part_group, model_message FROM messages
            WHERE session_id = $1 AND active ORDER BY sequence DESC LIMIT $2)
           UNION
           (SELECT sequence, role, part_group, model_message FROM messages
            WHERE session_id = $1 AND role = 'system' AND active)
           ORDER BY sequence""",
        session_id,
        limit,
    )
    return [stored_row(r) for r in recs]
