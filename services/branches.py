"""Branches: a session's messages form a tree, and its head picks the active branch.

Every message has a parent (null for the first); the head is the last message of the active
branch. The messages of the active branch carry ``active``, so reading it (pages, history, the
run's window) is one index range, as it was before branches. Moving the head touches only the
messages between the old and the new branch: sequences grow along every path, so the messages
of the active branch after a point are exactly its active messages of higher sequence.
"""

from __future__ import annotations

import uuid

import asyncpg

from models import Role, Session, User
from services import attachments
from services.database import acquire, model_from
from services.errors import BadInput, NotFound
from services.limits import short_text
from services.memory import MemoryBounds, enforce_bounds
from services.transcript import COLUMNS, MessageRow, lock_idle_session, message_from_record

# Moves the head to $2 (null: an empty branch). Climbs from the new head to the first message
# already on the active branch (the fork point), deactivates what the old branch has after it
# and activates the climbed path. Both updates touch disjoint rows (active vs. inactive).
_MOVE_HEAD = """
WITH RECURSIVE up AS (
    SELECT id, parent_id, active, sequence FROM messages WHERE id = $2 AND session_id = $1
    UNION ALL
    SELECT m.id, m.parent_id, m.active, m.sequence FROM messages m JOIN up ON m.id = up.parent_id
    WHERE NOT up.active
),
fork AS (SELECT coalesce(max(sequence) FILTER (WHERE active), 0) AS sequence FROM up),
off AS (
    UPDATE messages SET active = false
    WHERE session_id = $1 AND active AND sequence > (SELECT sequence FROM fork) RETURNING 1
),
lit AS (UPDATE messages SET active = true WHERE id IN (SELECT id FROM up WHERE NOT active) RETURNING 1)
UPDATE sessions SET head_id = $2, updated_at = now(),
    message_count = message_count - (SELECT count(*) FROM off) + (SELECT count(*) FROM lit)
WHERE id = $1
"""

# The newest message reachable from $2, following the most recently created child each step.
_NEWEST_BELOW = """
WITH RECURSIVE down AS (
    SELECT id, 0 AS depth FROM messages WHERE id = $2 AND session_id = $1
    UNION ALL
    SELECT c.id, d.depth + 1 FROM down d
    CROSS JOIN LATERAL (
        SELECT id FROM messages WHERE session_id = $1 AND parent_id = d.id ORDER BY sequence DESC LIMIT 1
    ) c
)
SELECT id FROM down ORDER BY depth DESC LIMIT 1
"""

# The path from the first message to $2, oldest first.
_PATH_TO = f"""
WITH RECURSIVE up AS (
    SELECT {COLUMNS} FROM messages WHERE id = $2 AND session_id = $1
    UNION ALL
    SELECT {", ".join(f"m.{c}" for c in COLUMNS.split(", "))} FROM messages m JOIN up ON m.id = up.parent_id
)
SELECT * FROM up ORDER BY sequence
"""

# The user message a reply answers: $2 itself when it is one, else its nearest USER ancestor.
_ASKED_BY = f"""
WITH RECURSIVE up AS (
    SELECT {COLUMNS} FROM messages WHERE id = $2 AND session_id = $1
    UNION ALL
    SELECT {", ".join(f"m.{c}" for c in COLUMNS.split(", "))} FROM messages m JOIN up ON m.id = up.parent_id
    WHERE up.role <> 'user'
)
SELECT * FROM up WHERE role = 'user' LIMIT 1
"""


async def session_of_message(user: User, message_id: uuid.UUID) -> tuple[Session, MessageRow]:
    """The caller's message and its session: someone else's is simply not found."""
    async with acquire() as conn:
        rec = await conn.fetchrow(
            f"""SELECT {", ".join(f"m.{c}" for c in COLUMNS.split(", "))} FROM messages m
                JOIN sessions s ON s.id = m.session_id WHERE m.id = $1 AND s.user_id = $2""",
            message_id,
            user.id,
        )
    if rec is None:
        raise NotFound.of("message", message_id)
    session = await Session.filter(id=rec["session_id"]).select_related("agent").first()
    if session is None:
        raise NotFound.of("message", message_id)
    return session, message_from_record(rec)


async def message_in(conn: asyncpg.Connection, session_id: uuid.UUID, message_id: uuid.UUID) -> MessageRow:
    """A message of the session, read in the caller's transaction (it may be gone meanwhile)."""
    rec = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM messages WHERE id = $2 AND session_id = $1", session_id, message_id
    )
    if rec is None:
        raise NotFound.of("message", message_id)
    return message_from_record(rec)


async def move_head(conn: asyncpg.Connection, session_id: uuid.UUID, head: uuid.UUID | None) -> None:
    """Make the branch ending at ``head`` active. Call inside a transaction holding the session."""
    await conn.execute(_MOVE_HEAD, session_id, head)


async def asked_by(conn: asyncpg.Connection, session_id: uuid.UUID, message_id: uuid.UUID) -> MessageRow:
    """For regenerate: the user message whose reply ``message_id`` is (or that message itself)."""
    target = await message_in(conn, session_id, message_id)
    if target.role not in (Role.USER, Role.ASSISTANT):
        raise BadInput(f"regenerate takes a USER or ASSISTANT message, not {target.role.name}")
    rec = await conn.fetchrow(_ASKED_BY, session_id, message_id)
    if rec is None:
        raise BadInput("this reply answers no user message: there is nothing to answer again")
    return message_from_record(rec)


async def edited(conn: asyncpg.Connection, session_id: uuid.UUID, message_id: uuid.UUID) -> MessageRow:
    """For editMessage: the user message of which a new version is sent."""
    target = await message_in(conn, session_id, message_id)
    if target.role is not Role.USER:
        raise BadInput(f"editMessage takes a USER message, not {target.role.name}")
    return target


async def switch_branch(user: User, message_id: uuid.UUID) -> Session:
    """Make the branch through ``message_id`` active, down to its newest message."""
    session, _ = await session_of_message(user, message_id)
    async with acquire() as conn, conn.transaction():
        await lock_idle_session(conn, session.id)
        head = await conn.fetchval(_NEWEST_BELOW, session.id, message_id)
        if head is None:
            raise NotFound.of("message", message_id)
        await move_head(conn, session.id, head)
        rec = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1", session.id)
    return model_from(Session, rec)


async def siblings_for(
    keys: list[tuple[uuid.UUID, uuid.UUID | None]],
) -> dict[tuple[uuid.UUID, uuid.UUID | None], list[uuid.UUID]]:
    """Children of each (session, parent), oldest first: the branch pickers of a page at once."""
    parents = [(s, p) for s, p in set(keys) if p is not None]
    roots = list({s for s, p in keys if p is None})
    found: dict[tuple[uuid.UUID, uuid.UUID | None], list[uuid.UUID]] = {k: [] for k in keys}
    async with acquire() as conn:
        recs = await conn.fetch(
            """SELECT m.session_id, m.parent_id, m.id, m.sequence FROM unnest($1::uuid[], $2::uuid[]) k(sid, pid)
               JOIN messages m ON m.session_id = k.sid AND m.parent_id = k.pid
               UNION ALL
               SELECT m.session_id, NULL, m.id, m.sequence FROM messages m
               WHERE m.session_id = ANY($3::uuid[]) AND m.parent_id IS NULL
               ORDER BY 4""",
            [s for s, _ in parents],
            [p for _, p in parents],
            roots,
        )
    for r in recs:
        found[(r["session_id"], r["parent_id"])].append(r["id"])
    return found


async def fork_session(user: User, message_id: uuid.UUID, title: str | None, bounds: MemoryBounds) -> Session:
    """A new session of the same user and agent holding a copy of the path up to ``message_id``.

    State and SESSION memory are copied too. Copies keep their content, usage and times (the
    history the model sees is the same); sequences start again at 1 and part groups follow.
    The copies refer to the same attachments as the messages they copy.
    """
    if title is not None:
        title = short_text(title, "title")
    source, _ = await session_of_message(user, message_id)
    new_id = uuid.uuid4()
    async with acquire() as conn, conn.transaction():
        # The user's row first, as memory writers take it: their totals cannot race the copy.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user.id)
        path = [message_from_record(r) for r in await conn.fetch(_PATH_TO, source.id, message_id)]
        if not path:
            raise NotFound.of("message", message_id)
        ids = [uuid.uuid4() for _ in path]
        seqs = {m.sequence: i + 1 for i, m in enumerate(path)}
        await conn.execute(
            """INSERT INTO sessions (id, user_id, agent_id, title, state, state_version, metadata, is_active,
                                     last_sequence, message_count, created_at, updated_at, last_activity_at,
                                     head_id, forked_from_id)
               SELECT $1, user_id, agent_id, coalesce($2, title), state, 0, metadata, true, $3, $3,
                      now(), now(), now(), $4, $5
               FROM sessions WHERE id = $6""",
            new_id,
            title,
            len(path),
            ids[-1],
            message_id,
            source.id,
        )
        await conn.execute(
            """INSERT INTO messages (id, session_id, sequence, role, content, tool_calls, tool_call_id,
                                     tool_name, run_id, model, requests, input_tokens, output_tokens, cost,
                                     processing_time_ms, metadata, model_message, part_group, created_at,
                                     parent_id)
               SELECT u.id, $1, u.seq, m.role, m.content, m.tool_calls, m.tool_call_id, m.tool_name, m.run_id,
                      m.model, m.requests, m.input_tokens, m.output_tokens, m.cost, m.processing_time_ms,
                      m.metadata, m.model_message, u.part_group, m.created_at, u.parent_id
               FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::int[], $6::uuid[])
                    AS u(source, id, seq, part_group, parent_id)
               JOIN messages m ON m.id = u.source""",
            new_id,
            [m.id for m in path],
            ids,
            list(range(1, len(path) + 1)),
            [seqs.get(m.part_group) if m.part_group is not None else None for m in path],
            [None, *ids[:-1]],
        )
        await attachments.copy_refs(conn, [m.id for m in path], ids)  # shared, not copied
        await conn.execute(
            """INSERT INTO memory_entries (id, user_id, session_id, scope, key, value, created_at, updated_at)
               SELECT gen_random_uuid(), user_id, $1, scope, key, value, created_at, now()
               FROM memory_entries WHERE session_id = $2 AND scope = 'session'""",
            new_id,
            source.id,
        )
        await enforce_bounds(conn, user.id, bounds)  # the copied SESSION memory counts too
        rec = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1", new_id)
    return model_from(Session, rec)
