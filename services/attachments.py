"""Attachments: files uploaded once, owned by their uploader, referenced by messages.

The description (name, type, size) is in ``attachments``; the bytes are in ``attachment_data``,
read only where they are needed (a download, a run's prompt and history, ``Session.history``),
never when messages or sessions are listed. Messages refer to attachments through
``message_attachments``.

An attachment with no message referring to it carries ``unreferenced_since``; retention deletes
it a day later. Referring to one (:func:`claim`) clears the mark with an UPDATE, which also locks
the row: whoever deletes attachments locks their rows first and then checks again, in a statement
of its own, that no message refers to them, so a message can never lose an attachment it holds
and a claim never finds a half-deleted one.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from models import User
from services import file_types
from services.database import acquire
from services.errors import BadInput, NotFound
from services.limits import storable

MAX_PER_MESSAGE = 10
CHUNK_BYTES = 256 * 1024  # a download reads this much per statement
COLUMNS = "id, user_id, filename, media_type, size, created_at"
_A_COLUMNS = ", ".join(f"a.{c}" for c in COLUMNS.split(", "))


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    id: uuid.UUID
    user_id: uuid.UUID
    filename: str
    media_type: str
    size: int
    created_at: datetime

    @property
    def is_binary(self) -> bool:
        """Images and PDFs reach the model as binary content; the rest is text."""
        return self.media_type in file_types.BINARY_TYPES


@dataclass(frozen=True, slots=True)
class Blob:
    """An attachment with its bytes."""

    row: AttachmentRow
    data: bytes


def _row(rec: asyncpg.Record) -> AttachmentRow:
    return AttachmentRow(*(rec[c] for c in COLUMNS.split(", ")))


# --- uploading and reading ------------------------------------------------------------------


async def upload(
    user: User, filename: str | None, declared: str | None, data: bytes, max_bytes: int
) -> AttachmentRow:
    """Store an uploaded file for its uploader, if it is one of the accepted types."""
    if len(data) > max_bytes:
        raise BadInput(f"the file is larger than {max_bytes} bytes (PARLEY_MAX_ATTACHMENT_BYTES)")
    kind = file_types.detect(data, filename, declared)
    name = storable(kind.filename, "filename")
    attachment_id = uuid.uuid4()
    async with acquire() as conn, conn.transaction():
        rec = await conn.fetchrow(
            f"""INSERT INTO attachments (id, user_id, filename, media_type, size, sha256, created_at,
                                         unreferenced_since)
                VALUES ($1, $2, $3, $4, $5, $6, now(), now()) RETURNING {COLUMNS}""",
            attachment_id,
            user.id,
            name,
            kind.media_type,
            len(data),
            hashlib.sha256(data).hexdigest(),
        )
        await conn.execute("INSERT INTO attachment_data (id, data) VALUES ($1, $2)", attachment_id, data)
    assert rec is not None  # INSERT ... RETURNING
    return _row(rec)


async def find(user: User, attachment_id: uuid.UUID) -> AttachmentRow | None:
    """The caller's attachment; someone else's is simply not found."""
    async with acquire() as conn:
        rec = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM attachments WHERE id = $1 AND user_id = $2", attachment_id, user.id
        )
    return _row(rec) if rec is not None else None


async def chunks(attachment_id: uuid.UUID, size: int) -> AsyncIterator[bytes]:
    """The bytes, a piece per statement: a slow download holds no connection in between, and
    (the column being uncompressed) PostgreSQL reads only the pieces asked for."""
    offset = 0
    while offset < size:
        async with acquire() as conn:
            piece = await conn.fetchval(
                "SELECT substring(data FROM $2 FOR $3) FROM attachment_data WHERE id = $1",
                attachment_id,
                offset + 1,
                CHUNK_BYTES,
            )
        if not piece:
            return  # deleted meanwhile
        offset += len(piece)
        yield bytes(piece)


async def blobs(ids: set[uuid.UUID], owners: list[uuid.UUID]) -> dict[uuid.UUID, Blob]:
    """Attachments with their bytes, of these users only (for a prompt or a history)."""
    if not ids:
        return {}
    async with acquire() as conn:
        recs = await conn.fetch(
            f"""SELECT {_A_COLUMNS}, d.data FROM attachments a JOIN attachment_data d ON d.id = a.id
                WHERE a.id = ANY($1::uuid[]) AND a.user_id = ANY($2::uuid[])""",
            list(ids),
            owners,
        )
    return {r["id"]: Blob(_row(r), bytes(r["data"])) for r in recs}


async def of_messages(message_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[AttachmentRow]]:
    """Each message's attachments in its order (Message.attachments, through a DataLoader)."""
    found: dict[uuid.UUID, list[AttachmentRow]] = defaultdict(list)
    async with acquire() as conn:
        recs = await conn.fetch(
            f"""SELECT ma.message_id, {_A_COLUMNS} FROM message_attachments ma
                JOIN attachments a ON a.id = ma.attachment_id
                WHERE ma.message_id = ANY($1::uuid[]) ORDER BY ma.message_id, ma.position""",
            list(set(message_ids)),
        )
    for r in recs:
        found[r["message_id"]].append(_row(r))
    return found


async def of_message(conn: asyncpg.Connection, message_id: uuid.UUID) -> list[AttachmentRow]:
    recs = await conn.fetch(
        f"""SELECT {_A_COLUMNS} FROM message_attachments ma JOIN attachments a ON a.id = ma.attachment_id
            WHERE ma.message_id = $1 ORDER BY ma.position""",
        message_id,
    )
    return [_row(r) for r in recs]


# --- referring ------------------------------------------------------------------------------


def check_ids(ids: tuple[uuid.UUID, ...]) -> tuple[uuid.UUID, ...]:
    if len(ids) > MAX_PER_MESSAGE:
        raise BadInput(f"a message takes at most {MAX_PER_MESSAGE} attachments")
    if len(set(ids)) != len(ids):
        raise BadInput("attachments lists an attachment more than once")
    return ids


async def claim(
    conn: asyncpg.Connection, user_id: uuid.UUID, ids: tuple[uuid.UUID, ...]
) -> list[AttachmentRow]:
    """Inside a transaction: the caller's attachments, in order, locked against deletion and no
    longer marked unreferenced. Someone else's (or a deleted) id is NOT_FOUND."""
    if not ids:
        return []
    recs = await conn.fetch(
        f"""UPDATE attachments SET unreferenced_since = NULL
            WHERE id = ANY($1::uuid[]) AND user_id = $2 RETURNING {COLUMNS}""",
        list(ids),
        user_id,
    )
    rows = {r["id"]: _row(r) for r in recs}
    for attachment_id in ids:
        if attachment_id not in rows:
            raise NotFound.of("attachment", attachment_id)
    return [rows[i] for i in ids]


async def refer(conn: asyncpg.Connection, message_id: uuid.UUID, rows: list[AttachmentRow]) -> None:
    if rows:
        await conn.execute(
            """INSERT INTO message_attachments (message_id, attachment_id, position)
               SELECT $1, a.id, a.position FROM unnest($2::uuid[]) WITH ORDINALITY AS a(id, position)""",
            message_id,
            [r.id for r in rows],
        )


async def copy_refs(conn: asyncpg.Connection, sources: list[uuid.UUID], copies: list[uuid.UUID]) -> None:
    """A fork's messages refer to the same attachments as the messages they copy."""
    await conn.execute(
        """INSERT INTO message_attachments (message_id, attachment_id, position)
           SELECT u.copy, ma.attachment_id, ma.position
           FROM unnest($1::uuid[], $2::uuid[]) AS u(source, copy)
           JOIN message_attachments ma ON ma.message_id = u.source""",
        sources,
        copies,
    )


# --- letting go -----------------------------------------------------------------------------


async def of_sessions(conn: asyncpg.Connection, session_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The attachments messages of these sessions refer to (before those messages go)."""
    recs = await conn.fetch(
        """SELECT DISTINCT ma.attachment_id FROM messages m
           JOIN message_attachments ma ON ma.message_id = m.id
           WHERE m.session_id = ANY($1::uuid[])""",
        session_ids,
    )
    return [r["attachment_id"] for r in recs]


_STILL_UNREFERENCED = "NOT EXISTS (SELECT 1 FROM message_attachments ma WHERE ma.attachment_id = a.id)"


async def drop_unreferenced(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> int:
    """Inside a transaction, after messages went: delete those of ``ids`` no message refers to."""
    if not ids:
        return 0
    # Lock first: a claim in flight finishes (its reference is then seen below) or waits for us.
    await conn.execute("SELECT 1 FROM attachments WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", ids)
    status = await conn.execute(
        f"DELETE FROM attachments a WHERE a.id = ANY($1::uuid[]) AND {_STILL_UNREFERENCED}", ids
    )
    return int(status.split()[-1])


async def release(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> None:
    """Inside a transaction, after messages went: those of ``ids`` no message refers to any
    more are unreferenced from now on (retention deletes them a day later)."""
    if ids:
        await conn.execute(
            f"""UPDATE attachments a SET unreferenced_since = now()
                WHERE a.id = ANY($1::uuid[]) AND a.unreferenced_since IS NULL AND {_STILL_UNREFERENCED}""",
            ids,
        )


async def mark_unreferenced(conn: asyncpg.Connection) -> int:
    """Retention's safety net: attachments whose references went by any other way get their mark."""
    status = await conn.execute(
        f"UPDATE attachments a SET unreferenced_since = now() WHERE a.unreferenced_since IS NULL AND {_STILL_UNREFERENCED}"
    )
    return int(status.split()[-1])


async def delete_unreferenced(conn: asyncpg.Connection, grace_s: float, batch: int) -> tuple[int, int]:
    """One short transaction: up to ``batch`` attachments unreferenced for ``grace_s`` seconds
    go. Returns (picked, deleted); a picked one that is referenced after all keeps no mark."""
    async with conn.transaction():
        picked = await conn.fetch(
            """SELECT id FROM attachments
               WHERE unreferenced_since < now() - make_interval(secs => $1)
               ORDER BY unreferenced_since LIMIT $2 FOR UPDATE SKIP LOCKED""",
            grace_s,
            batch,
        )
        if not picked:
            return 0, 0
        ids = [r["id"] for r in picked]
        status = await conn.execute(
            f"DELETE FROM attachments a WHERE a.id = ANY($1::uuid[]) AND {_STILL_UNREFERENCED}", ids
        )
        deleted = int(status.split()[-1])
        if deleted < len(ids):
            await conn.execute(
                "UPDATE attachments SET unreferenced_since = NULL WHERE id = ANY($1::uuid[])", ids
            )
    return len(ids), deleted
