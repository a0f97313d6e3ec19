"""Run by tests/test_branches.py in a process of its own (Tortoise keeps global state).

Migrate to 0006, write a linear session the old way, migrate on: one branch, head = last."""

import asyncio
import sys
import uuid

import asyncpg
from tortoise.migrations.api.migrate import migrate

from services.database import asyncpg_dsn, tortoise_config


async def main(url: str) -> None:
    await migrate(config=tortoise_config(url, pool_size=2), target="models.0006_kept_run_text")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    user, agent, session = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(3)]
    await conn.execute(
        "INSERT INTO users (id, name, kind, is_admin, created_at) VALUES ($1, 'u', 'token', false, now())",
        user,
    )
    await conn.execute(
        """INSERT INTO agents (id, name, model, instructions, memory_enabled, history_limit, created_at, updated_at)
           VALUES ($1, 'a', 'echo', '', false, 100, now(), now())""",
        agent,
    )
    await conn.execute(
        """INSERT INTO sessions (id, user_id, agent_id, state, state_version, metadata, is_active, last_sequence,
                                 message_count, created_at, updated_at, last_activity_at)
           VALUES ($1, $2, $3, '{}', 0, '{}', true, 3, 3, now(), now(), now())""",
        session,
        user,
        agent,
    )
    for seq, mid in enumerate(ids, 1):
        await conn.execute(
            """INSERT INTO messages (id, session_id, sequence, role, content, tool_calls, metadata, model_message,
                                     created_at) VALUES ($1, $2, $3, 'user', 'x', '[]', '{}', '{}', now())""",
            mid,
            session,
            seq,
        )
    await conn.close()
    await migrate(config=tortoise_config(url, pool_size=2))
    conn = await asyncpg.connect(asyncpg_dsn(url))
    rows = await conn.fetch("SELECT id, parent_id, active FROM messages ORDER BY sequence")
    head = await conn.fetchval("SELECT head_id FROM sessions WHERE id = $1", session)
    await conn.close()
    assert [r["parent_id"] for r in rows] == [None, ids[0], ids[1]], rows
    assert all(r["active"] for r in rows) and head == ids[2], (rows, head)
    print("one branch")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
