"""Retention: cleanupSessions, `parley cleanup` and the background task.

Every test ages its own sessions to an age no other test uses (thousands of days) and
cleans up with a threshold just below it, so counts are exact whatever ran before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services import retention
from services.database import acquire, asyncpg_dsn
from services.settings import Settings
from tests.conftest import Api

ROOT = Path(__file__).resolve().parent.parent
CLEANUP = "mutation($d: Int!) { cleanupSessions(inactiveDays: $d) }"


async def sql(query: str, *args: Any) -> list[asyncpg.Record]:
    async with acquire() as conn:
        return await conn.fetch(query, *args)


async def new_session(api: Api, with_data: bool = True) -> str:
    sid: str = (await api.gql("mutation { createSession(input: {}) { id } }"))["createSession"]["id"]
    if with_data:
        await api.gql(
            """mutation($s: UUID!) { addMessages(sessionId: $s, messages: [
                 {role: USER, content: "hello"}, {role: ASSISTANT, content: "hi"}]) { id } }""",
            {"s": sid},
        )
        await api.gql(
            'mutation($s: UUID!) { saveMemory(key: "topic", value: "greetings", scope: SESSION, sessionId: $s) { key } }',
            {"s": sid},
        )
        await sql(
            """INSERT INTO runs (id, session_id, status, model, owner_key, started_at, finished_at,
                                 partial_text, partial_index)
               VALUES ($1, $2, 'completed', 'echo', 0, now(), now(), '', 0)""",
            uuid.uuid4(),
            uuid.UUID(sid),
        )
    return sid


async def age(session_id: str, days: float) -> None:
    await sql(
        "UPDATE sessions SET last_activity_at = now() - make_interval(days => $2) WHERE id = $1",
        uuid.UUID(session_id),
        days,
    )


async def existing(ids: list[str]) -> set[str]:
    rows = await sql("SELECT id FROM sessions WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids])
    return {str(r["id"]) for r in rows}


async def leftovers(ids: list[str]) -> dict[str, int]:
    uids = [uuid.UUID(i) for i in ids]
    counts = {}
    for table in ("messages", "runs", "memory_entries"):
        rows = await sql(f"SELECT count(*) AS n FROM {table} WHERE session_id = ANY($1::uuid[])", uids)
        counts[table] = rows[0]["n"]
    return counts


async def wait_for(condition: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    """Poll ``condition()`` (async) until true; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_cleanup_sessions_by_age(api: Api, admin: Api) -> None:
    oldest = await new_session(api)
    old = await new_session(api)
    mid = await new_session(api)
    fresh = await new_session(api)
    await age(oldest, 2100)
    await age(old, 2000)
    await age(mid, 1950)
    await age(fresh, 1899)
    await api.gql('mutation { saveMemory(key: "name", value: "Ada") { key } }')  # USER scope: kept

    assert await admin.gql(CLEANUP, {"d": 2050}) == {"cleanupSessions": 1}
    assert await existing([oldest, old, mid, fresh]) == {old, mid, fresh}
    assert await admin.gql(CLEANUP, {"d": 1900}) == {"cleanupSessions": 2}
    assert await existing([oldest, old, mid, fresh]) == {fresh}
    assert await leftovers([oldest, old, mid]) == {"messages": 0, "runs": 0, "memory_entries": 0}
    assert await leftovers([fresh]) == {"messages": 2, "runs": 1, "memory_entries": 1}
    assert (await api.gql("{ memory { key value } }"))["memory"] == [{"key": "name", "value": "Ada"}]
    assert await admin.gql(CLEANUP, {"d": 1900}) == {"cleanupSessions": 0}
    # The deleted sessions are gone for their owner too.
    assert await api.gql("query($id: UUID!) { session(id: $id) { id } }", {"id": old}) == {"session": None}
    await age(fresh, 0)


async def test_cleanup_sessions_is_for_admins(api: Api, other: Api) -> None:
    sid = await new_session(api, with_data=False)
    await age(sid, 2200)
    assert await api.code(CLEANUP, {"d": 2100}) == "FORBIDDEN"
    assert await other.code(CLEANUP, {"d": 2100}) == "FORBIDDEN"
    assert await existing([sid]) == {sid}
    await age(sid, 0)


async def test_cleanup_rejects_bad_days(admin: Api) -> None:
    for days in (0, -5, 36501):
        assert await admin.code(CLEANUP, {"d": days}) == "BAD_USER_INPUT"


async def test_cleanup_in_batches(api: Api) -> None:
    ids = [await new_session(api) for _ in range(5)]
    for sid in ids:
        await age(sid, 2300)
    assert await retention.cleanup(2250, batch_size=2) == 5
    assert await existing(ids) == set()
    assert await leftovers(ids) == {"messages": 0, "runs": 0, "memory_entries": 0}


async def test_cleanup_batches_are_bounded_by_messages(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [await new_session(api) for _ in range(4)]  # 2 messages each
    for sid in ids:
        await age(sid, 2320)
    monkeypatch.setattr(retention, "BATCH_MESSAGES", 5)
    sizes: list[int] = []
    original = retention._delete_batch

    async def spy(*args: Any) -> int:
        sizes.append(await original(*args))
        return sizes[-1]

    monkeypatch.setattr(retention, "_delete_batch", spy)
    assert await retention.cleanup(2310) == 4
    assert sizes == [2, 2, 0]  # 2 + 2 messages fit in 5, a third session would not
    assert await leftovers(ids) == {"messages": 0, "runs": 0, "memory_entries": 0}


async def test_cleanup_keeps_a_session_with_a_running_reply(api: Api) -> None:
    busy = await new_session(api, with_data=False)
    idle = await new_session(api, with_data=False)
    await age(busy, 2400)
    await age(idle, 2400)
    run_id = uuid.uuid4()
    await sql(
        """INSERT INTO runs (id, session_id, status, model, owner_key, partial_text, partial_index, started_at)
           VALUES ($1, $2, 'running', 'echo', 0, '', 0, now())""",
        run_id,
        uuid.UUID(busy),
    )
    assert await retention.cleanup(2350) == 1
    assert await existing([busy, idle]) == {busy}
    await sql("UPDATE runs SET status = 'failed', finished_at = now() WHERE id = $1", run_id)
    assert await retention.cleanup(2350) == 1
    assert await existing([busy]) == set()


async def test_cli_cleanup(api: Api, database_url: str) -> None:
    ids = [await new_session(api) for _ in range(3)]
    keep = await new_session(api, with_data=False)
    for sid in ids:
        await age(sid, 3000)
    await age(keep, 2800)

    async def run(*args: str) -> tuple[int, str, str]:
        env = {**os.environ, "DATABASE_URL": database_url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parley",
            "cleanup",
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await run("--inactive-days", "2900")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "deleted 3 inactive sessions"
    assert await existing([*ids, keep]) == {keep}
    assert await leftovers(ids) == {"messages": 0, "runs": 0, "memory_entries": 0}

    code, out, err = await run("--inactive-days", "2900")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "deleted 0 inactive sessions"

    code, out, err = await run("--inactive-days", "0")
    assert code == 2
    assert "BAD_USER_INPUT" in err
    await age(keep, 0)


async def test_background_task_deletes_periodically(api: Api, database_url: str) -> None:
    first = await new_session(api)
    await age(first, 4000)
    settings = Settings(database_url=database_url, retention_days=3900, retention_interval_s=0.05)
    async with background(settings) as sweeper:
        await wait_for(lambda: _gone([first]))
        await wait_for(lambda: _true(sweeper.deleted >= 1))  # counted once the sweep returns
        # Later sweeps pick up sessions that become inactive afterwards.
        second = await new_session(api)
        await age(second, 4000)
        await wait_for(lambda: _gone([second]))
        await wait_for(lambda: _true(sweeper.deleted >= 2))
        assert sweeper.sweeps >= 2 and sweeper.failures == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "parley-retention"]
    assert await leftovers([first, second]) == {"messages": 0, "runs": 0, "memory_entries": 0}


async def test_background_task_runs_once_per_group(api: Api, database_url: str) -> None:
    """While another process holds the retention lock, this one skips its sweeps."""
    sid = await new_session(api)
    await age(sid, 4100)
    settings = Settings(database_url=database_url, retention_days=4050, retention_interval_s=0.05)
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert await holder.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", retention.LOCK_CLASS, retention.LOCK_RETENTION
        )
        async with background(settings) as sweeper:
            await wait_for(lambda: _true(sweeper.skipped >= 2))
            assert sweeper.sweeps == 0
            assert await existing([sid]) == {sid}
            await holder.execute(
                "SELECT pg_advisory_unlock($1, $2)", retention.LOCK_CLASS, retention.LOCK_RETENTION
            )
            await wait_for(lambda: _gone([sid]))
            await wait_for(lambda: _true(sweeper.deleted == 1))
    finally:
        await holder.close()


async def retention_lock_holders() -> int:
    rows = await sql(
        """SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND classid = $1 AND objid = $2 AND objsubid = 2""",
        retention.LOCK_CLASS,
        retention.LOCK_RETENTION,
    )
    return int(rows[0]["n"])


async def test_the_lock_is_held_only_during_a_sweep(api: Api, database_url: str) -> None:
    sid = await new_session(api)
    await age(sid, 4300)
    settings = Settings(database_url=database_url, retention_days=4250, retention_interval_s=3600)
    async with background(settings) as sweeper:
        await wait_for(lambda: _true(sweeper.sweeps == 1))
        assert sweeper.deleted == 1 and await existing([sid]) == set()
        # Between sweeps no connection (pooled ones included) keeps the lock.
        assert await retention_lock_holders() == 0
        assert await retention.sweep_once(4250) == 0
    assert await retention_lock_holders() == 0


async def test_two_background_tasks_share_the_work(api: Api, database_url: str) -> None:
    ids = [await new_session(api) for _ in range(4)]
    for sid in ids:
        await age(sid, 4200)
    settings = Settings(database_url=database_url, retention_days=4150, retention_interval_s=0.05)
    async with background(settings) as one, background(settings) as two:
        await wait_for(lambda: _gone(ids))
        # Whoever swept, each session was deleted exactly once.
        await wait_for(lambda: _true(one.deleted + two.deleted == 4))
        await wait_for(lambda: _true(one.sweeps + two.sweeps >= 3))
        assert one.deleted + two.deleted == 4
        assert one.failures == two.failures == 0


async def test_background_task_off_without_retention_days(database_url: str) -> None:
    async with background(Settings(database_url=database_url, retention_days=None)) as sweeper:
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "parley-retention"]
    assert sweeper.sweeps == sweeper.skipped == 0


@contextlib.asynccontextmanager
async def background(settings: Settings) -> AsyncIterator[retention.Sweeper]:
    """A runtime of its own (another process, as far as retention is concerned) and its sweeper."""
    from services.runtime import Runtime

    assert settings.database_url is not None
    async with Runtime(settings, settings.database_url).running() as rt:
        yield rt.sweeper


async def _gone(ids: list[str]) -> bool:
    return not await existing(ids)


async def _true(value: bool) -> bool:
    return value
