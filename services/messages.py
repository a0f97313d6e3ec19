"""Messages: keyset pages, appending rows with gap-free sequences, history."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic_ai.messages import ModelMessagesTypeAdapter

from models import Message, Role, User
from services import attachments, events, pagination, references
from services.conversation import IncomingMessage, StoredRow, drafts_from_openai, to_history_json
from services.database import acquire
from services.errors import BadInput
from services.limits import Limits, short_text
from services.owned import require_session
from services.pagination import Page
from services.transcript import COLUMNS as _COLUMNS
from services.transcript import (
    AnyMessage,
    MessageRow,
    append,
    lock_idle_session,
    message_from_record,
    stored_row,
)

if TYPE_CHECKING:
    from services.runtime import Runtime

_CURSOR = "m"
_DEFAULT_PAGE = 20
MAX_BATCH = 100


@dataclass(frozen=True)
class PageArgs:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    roles: tuple[Role, ...] | None = None

    def resolved(self, limits: Limits) -> tuple[bool, int, int | None]:
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


def cursor_of(message: AnyMessage) -> str:
    return pagination.encode(_CURSOR, message.sequence)


async def pages_for(
    session_ids: list[uuid.UUID], args: PageArgs, limits: Limits
) -> dict[uuid.UUID, Page[MessageRow]]:
    """One page per session in a single statement (totalCount included)."""
    forward, size, cursor = args.resolved(limits)
    conds = ["m.session_id = s.id", "m.active"]
    params: list[Any] = [session_ids, size + 1]
    if args.roles:
        params.append([r.value for r in args.roles])
        conds.append(f"m.role = ANY(${len(params)})")
    total_sql = "s.message_count"
    if args.roles:
        total_sql = f"(SELECT count(*) FROM messages c WHERE c.session_id = s.id AND c.active AND c.role = ANY(${len(params)}))"
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
    rows: dict[uuid.UUID, list[MessageRow]] = defaultdict(list)
    totals: dict[uuid.UUID, int] = {}
    for rec in records:
        totals[rec["sid"]] = rec["total"]
        if rec["id"] is not None:
            rows[rec["sid"]].append(message_from_record({k: rec[k] for k in _COLUMNS.split(", ")}))
    pages: dict[uuid.UUID, Page[MessageRow]] = {}
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


async def list_messages(rt: Runtime, user: User, session_id: uuid.UUID, args: PageArgs) -> Page[MessageRow]:
    session = await require_session(user, session_id)
    return (await pages_for([session.id], args, rt.limits))[session.id]


async def messages_by_ids(ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
    return {m.id: m for m in await Message.filter(id__in=list(set(ids)))}


async def add_messages(
    rt: Runtime, user: User, session_id: uuid.UUID, incoming: list[IncomingMessage]
) -> list[MessageRow]:
    """Record turns produced elsewhere (OpenAI-style roles and tool calls)."""
    if not incoming:
        raise BadInput("messages must not be empty")
    if len(incoming) > MAX_BATCH:
        raise BadInput(f"at most {MAX_BATCH} messages per call")
    for i, msg in enumerate(incoming):
        _check_incoming(rt.limits, i, msg)
    session = await require_session(user, session_id)
    async with acquire() as conn, conn.transaction():
        await lock_idle_session(conn, session.id)
        known = await _known_calls(conn, session.id, incoming)
        _check_links(incoming, known)
        added = await append(conn, session.id, drafts_from_openai(incoming, known))
    for message in added:  # watchers of the session see recorded turns too
        rt.emit(session.id, events.MessageAdded(message))
    return added


def _check_incoming(limits: Limits, i: int, msg: IncomingMessage) -> None:
    where = f"messages[{i}]"
    limits.content(msg.content, f"{where}.content", allow_empty=True)
    limits.json_value(msg.metadata, f"{where}.metadata", require_object=True)
    if msg.tool_call_id is not None:
        short_text(msg.tool_call_id, f"{where}.toolCallId")
    if msg.tool_name is not None:
        short_text(msg.tool_name, f"{where}.toolName")
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
        short_text(call["id"], f"{where}.toolCalls.id")
        short_text(call["name"], f"{where}.toolCalls.name")
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


async def histories_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The history of many sessions in one statement (Session.history through a DataLoader).

    Callers pass ids of sessions the user owns (they come from Session objects already loaded).
    """
    rows: dict[uuid.UUID, list[StoredRow]] = {sid: [] for sid in session_ids}
    async with acquire() as conn:
        recs = await conn.fetch(
            "SELECT session_id, sequence, role, part_group, model_message FROM messages "
            "WHERE session_id = ANY($1) AND active ORDER BY session_id, sequence",
            list(set(session_ids)),
        )
    referring = False
    for r in recs:
        rows[r["session_id"]].append(stored_row(r))
        referring = referring or references.might_refer(r["model_message"])
    histories = {sid: to_history_json(found) for sid, found in rows.items()}
    if referring:
        await _fill_histories(histories)
    return histories


async def _fill_histories(histories: dict[uuid.UUID, list[dict[str, Any]]]) -> None:
    """Attachments are stored as references: put back what the model was sent (base64 bytes in
    pydantic-ai's BinaryContent JSON, the text of text files), by pydantic-ai's own serializer."""
    referred = references.ids_in_json(m for history in histories.values() for m in history)
    if not referred:
        return
    async with acquire() as conn:
        recs = await conn.fetch("SELECT DISTINCT user_id FROM sessions WHERE id = ANY($1)", list(histories))
    found = await attachments.blobs(referred, [r["user_id"] for r in recs])
    for history in histories.values():
        for i, message in enumerate(history):
            if references.ids_in_json([message]):
                (validated,) = ModelMessagesTypeAdapter.validate_python([message])
                (filled,) = references.fill([validated], found)
                history[i] = ModelMessagesTypeAdapter.dump_python([filled], mode="json")[0]


async def clear_history(user: User, session_id: uuid.UUID) -> None:
    """Delete the messages; keep the session, its state, memory and sequence counter."""
    session = await require_session(user, session_id)
    async with acquire() as conn, conn.transaction():
        await lock_idle_session(conn, session.id)
        attached = await attachments.of_sessions(conn, [session.id])
        await conn.execute("DELETE FROM messages WHERE session_id = $1", session.id)
        await attachments.release(conn, attached)  # retention deletes them a day from now
        await conn.execute(
            "UPDATE sessions SET message_count = 0, head_id = NULL, updated_at = now() WHERE id = $1",
            session.id,
        )
