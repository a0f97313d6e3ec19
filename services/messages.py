"""Messages: keyset pages, appending rows with gap-free sequences, history."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from models import Message, Role, RunStatus, User
from services import limits, pagination
from services.conversation import IncomingMessage, RowDraft, StoredRow, drafts_from_openai, to_history_json
from services.database import acquire
from services.errors import BadInput, NotFound, RunInProgress
from services.pagination import Page
from services.sessions import require_session, title_from

_CURSOR = "m"
_DEFAULT_PAGE = 20
MAX_BATCH = 100

_COLUMNS = (
    "id, session_id, sequence, role, content, tool_calls, tool_call_id, tool_name, run_id, model, "
    "requests, input_tokens, output_tokens, cost, processing_time_ms, metadata, model_message, "
    "part_group, created_at"
)


@dataclass(frozen=True)
class PageArgs:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    roles: tuple[Role, ...] | None = None

    def resolved(self) -> tuple[bool, int, int | None]:
        """(forward, size, cursor sequence)."""
        if self.first is not None and self.last is not None:
            raise BadInput("give first or last, not both")
        if self.after is not None and self.before is not None:
            raise BadInput("give after or before, not both")
        forward = self.last is None and (self.first is not None or self.before is None)
        size = limits.page_size(self.first if forward else self.last, _DEFAULT_PAGE)
        cursor = self.after if forward else self.before
        if cursor is None:
            return forward, size, None
        if (forward and self.before is not None) or (not forward and self.after is not None):
            raise BadInput("use after with first, before with last")
        (raw,) = pagination.decode(cursor, _CURSOR, 1)
        try:
            return forward, size, int(raw)
        except ValueError as exc:
            raise BadInput("invalid cursor") from exc


def message_from_record(rec: asyncpg.Record | dict[str, Any]) -> Message:
    """A Message model from a raw row (no extra query)."""
    data = dict(rec)
    for key in ("tool_calls", "metadata"):
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    data["role"] = Role(data["role"])
    msg = Message(**{k: data[k] for k in _COLUMNS.split(", ")})
    msg._saved_in_db = True
    return msg


def cursor_of(message: Message) -> str:
    return pagination.encode(_CURSOR, message.sequence)


async def pages_for(session_ids: list[uuid.UUID], args: PageArgs) -> dict[uuid.UUID, Page[Message]]:
    """One page per session in a single statement (totalCount included)."""
    forward, size, cursor = args.resolved()
    conds = ["m.session_id = s.id"]
    params: list[Any] = [session_ids, size + 1]
    if args.roles:
        params.append([r.value for r in args.roles])
        conds.append(f"m.role = ANY(${len(params)})")
    total_sql = "s.message_count"
    if args.roles:
        total_sql = (
            f"(SELECT count(*) FROM messages c WHERE c.session_id = s.id AND c.role = ANY(${len(params)}))"
        )
    if cursor is not None:
        params.append(cursor)
        conds.append(f"m.sequence {'>' if forward else '<'} ${len(params)}")
    order = "ASC" if forward else "DESC"
    cols = ", ".join(f"m.{c}" for c in _COLUMNS.split(", "))
    sql = f"""
        SELECT s.id AS sid, {total_sql} AS total, {cols}
        FROM sessions s
        LEFT JOIN LATERAL (
            SELECT * FROM messages m WHERE {" AND ".join(conds)}
            ORDER BY m.sequence {order} LIMIT $2
        ) m ON true
        WHERE s.id = ANY($1)
    """
    async with acquire() as conn:
        records = await conn.fetch(sql, *params)
    rows: dict[uuid.UUID, list[Message]] = defaultdict(list)
    totals: dict[uuid.UUID, int] = {}
    for rec in records:
        totals[rec["sid"]] = rec["total"]
        if rec["id"] is not None:
            rows[rec["sid"]].append(message_from_record({k: rec[k] for k in _COLUMNS.split(", ")}))
    pages: dict[uuid.UUID, Page[Message]] = {}
    for sid in session_ids:
        got = sorted(rows.get(sid, []), key=lambda m: m.sequence, reverse=not forward)
        more = len(got) > size
        items = got[:size]
        if not forward:
            items.reverse()
        pages[sid] = Page(
            items=items,
            cursors=[cursor_of(m) for m in items],
            has_next=more if forward else cursor is not None,
            has_previous=cursor is not None if forward else more,
            total_count=totals.get(sid, 0),
        )
    return pages


async def list_messages(user: User, session_id: uuid.UUID, args: PageArgs) -> Page[Message]:
    session = await require_session(user, session_id)
    return (await pages_for([session.id], args))[session.id]


async def messages_by_ids(ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
    return {m.id: m for m in await Message.filter(id__in=list(set(ids)))}


# --- writing ---------------------------------------------------------------------------------


async def lock_idle_session(conn: asyncpg.Connection, session_id: uuid.UUID) -> None:
    """Inside a transaction: lock the session row; fail if a live reply is running.

    A RUNNING run whose owning process died (its advisory lock is gone) is marked
    INTERRUPTED here, so a crashed process never blocks a session for good.
    """
    await conn.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", session_id)
    run = await conn.fetchrow(
        "SELECT id, owner_key FROM runs WHERE session_id = $1 AND status = $2",
        session_id,
        RunStatus.RUNNING.value,
    )
    if run is None:
        return
    if await owner_alive(conn, run["owner_key"]):
        raise RunInProgress()
    await mark_interrupted(conn, [run["id"]])


async def owner_alive(conn: asyncpg.Connection, owner_key: int) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                 AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)""",
            owner_key,
        )
    )


async def mark_interrupted(conn: asyncpg.Connection, run_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        """UPDATE runs SET status = 'failed', finished_at = now(), error_code = 'INTERRUPTED',
               error_message = 'the server process running this reply stopped before it finished'
           WHERE id = ANY($1) AND status = 'running'""",
        run_ids,
    )


async def append(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    drafts: list[RowDraft],
    *,
    run_id: uuid.UUID | None = None,
    processing_time_ms: int | None = None,
) -> list[Message]:
    """Append rows with the next sequences. Call inside a transaction.

    The session row update both hands out the sequences and serialises writers of one
    session, so sequences are gap-free and strictly increasing under any concurrency.
    """
    if not drafts:
        return []
    first_user = next((d.content for d in drafts if d.role is Role.USER), None)
    last = await conn.fetchval(
        """UPDATE sessions SET last_sequence = last_sequence + $2, message_count = message_count + $2,
               last_activity_at = now(), updated_at = now(),
               title = COALESCE(title, $3)
           WHERE id = $1 RETURNING last_sequence""",
        session_id,
        len(drafts),
        title_from(first_user) if first_user else None,
    )
    if last is None:
        raise NotFound.of("session", session_id)
    start = last - len(drafts) + 1
    ids, seqs, groups = [], [], []
    group: int | None = None
    for i, d in enumerate(drafts):
        seq = start + i
        grouped_next = i + 1 < len(drafts) and drafts[i + 1].grouped
        if not d.grouped:
            group = seq if grouped_next else None
        ids.append(uuid.uuid4())
        seqs.append(seq)
        groups.append(group)
    records = await conn.fetch(
        f"""
        INSERT INTO messages ({_COLUMNS})
        SELECT u.id, $1, u.seq, u.role, u.content, u.tool_calls::jsonb, u.tool_call_id, u.tool_name,
               $2, u.model, u.requests, u.input_tokens, u.output_tokens, u.cost, $3,
               u.metadata::jsonb, u.model_message, u.part_group, clock_timestamp()
        FROM unnest($4::uuid[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                    $11::text[], $12::int[], $13::int[], $14::int[], $15::float8[], $16::text[],
                    $17::text[], $18::int[])
             AS u(id, seq, role, content, tool_calls, tool_call_id, tool_name, model, requests,
                  input_tokens, output_tokens, cost, metadata, model_message, part_group)
        RETURNING {_COLUMNS}
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
    )
    return sorted((message_from_record(r) for r in records), key=lambda m: m.sequence)


async def add_messages(user: User, session_id: uuid.UUID, incoming: list[IncomingMessage]) -> list[Message]:
    """Record turns produced elsewhere (OpenAI-style roles and tool calls)."""
    if not incoming:
        raise BadInput("messages must not be empty")
    if len(incoming) > MAX_BATCH:
        raise BadInput(f"at most {MAX_BATCH} messages per call")
    for i, msg in enumerate(incoming):
        _check_incoming(i, msg)
    session = await require_session(user, session_id)
    async with acquire() as conn, conn.transaction():
        await lock_idle_session(conn, session.id)
        known = await _known_calls(conn, session.id, incoming)
        _check_links(incoming, known)
        return await append(conn, session.id, drafts_from_openai(incoming, known))


def _check_incoming(i: int, msg: IncomingMessage) -> None:
    where = f"messages[{i}]"
    limits.content(msg.content, f"{where}.content", allow_empty=True)
    limits.json_value(msg.metadata, f"{where}.metadata", require_object=True)
    if msg.role is Role.TOOL:
        if not msg.tool_call_id:
            raise BadInput(f"{where}: a TOOL message needs toolCallId")
    elif msg.tool_call_id is not None:
        raise BadInput(f"{where}: only TOOL messages take toolCallId")
    if msg.tool_calls and msg.role is not Role.ASSISTANT:
        raise BadInput(f"{where}: only ASSISTANT messages take toolCalls")
    if msg.role in (Role.USER, Role.SYSTEM) and not msg.content.strip():
        raise BadInput(f"{where}.content must not be empty")
    if msg.role is Role.ASSISTANT and not msg.content and not msg.tool_calls:
        raise BadInput(f"{where}: an ASSISTANT message needs content or toolCalls")
    for call in msg.tool_calls:
        if not call["id"] or not call["name"]:
            raise BadInput(f"{where}.toolCalls: id and name must not be empty")
        limits.json_value(call.get("arguments"), f"{where}.toolCalls.arguments")


async def _known_calls(
    conn: asyncpg.Connection, session_id: uuid.UUID, incoming: list[IncomingMessage]
) -> dict[str, str]:
    wanted = [m.tool_call_id for m in incoming if m.role is Role.TOOL and m.tool_call_id]
    if not wanted:
        return {}
    rows = await conn.fetch(
        """SELECT c->>'id' AS id, c->>'name' AS name
           FROM messages, jsonb_array_elements(tool_calls) c
           WHERE session_id = $1 AND role = 'assistant' AND c->>'id' = ANY($2)""",
        session_id,
        wanted,
    )
    return {r["id"]: r["name"] for r in rows}


def _check_links(incoming: list[IncomingMessage], known: dict[str, str]) -> None:
    seen = set(known)
    for i, msg in enumerate(incoming):
        for call in msg.tool_calls:
            seen.add(call["id"])
        if msg.role is Role.TOOL and msg.tool_call_id not in seen:
            raise BadInput(
                f"messages[{i}].toolCallId {msg.tool_call_id!r} answers no tool call of this session"
            )


async def stored_rows(
    conn: asyncpg.Connection, session_id: uuid.UUID, limit: int | None = None
) -> list[StoredRow]:
    """The newest ``limit`` rows (all when None), oldest first, plus older SYSTEM rows."""
    if limit is None:
        recs = await conn.fetch(
            "SELECT sequence, role, part_group, model_message FROM messages "
            "WHERE session_id = $1 ORDER BY sequence",
            session_id,
        )
    else:
        # Keyset from the newest: reads only what the window needs, whatever the session's size.
        recs = await conn.fetch(
            """(SELECT sequence, role, part_group, model_message FROM messages
                WHERE session_id = $1 ORDER BY sequence DESC LIMIT $2)
               UNION
               (SELECT sequence, role, part_group, model_message FROM messages
                WHERE session_id = $1 AND role = 'system')
               ORDER BY sequence""",
            session_id,
            limit,
        )
    return [StoredRow(r["sequence"], Role(r["role"]), r["part_group"], r["model_message"]) for r in recs]


async def history_json(user: User, session_id: uuid.UUID) -> list[dict[str, Any]]:
    session = await require_session(user, session_id)
    async with acquire() as conn:
        return to_history_json(await stored_rows(conn, session.id))


async def clear_history(user: User, session_id: uuid.UUID) -> None:
    """Delete the messages; keep the session, its state, memory and sequence counter."""
    session = await require_session(user, session_id)
    async with acquire() as conn, conn.transaction():
        await lock_idle_session(conn, session.id)
        await conn.execute("DELETE FROM messages WHERE session_id = $1", session.id)
        await conn.execute(
            "UPDATE sessions SET message_count = 0, updated_at = now() WHERE id = $1", session.id
        )
