"""Chat-turn throughput: sendMessage (echo model, 1 worker) against raw asyncpg doing the same writes.

Phase 1: 16 concurrent sessions, each calling sendMessage in a loop for a fixed time, over HTTP.
Phase 2: the server is stopped; raw asyncpg, 16 concurrent connections, each turn one transaction
that updates the session row (next sequences) and inserts a user message row and a reply row,
copied column for column from rows the service wrote in phase 1, into the same database.
Phase 3: a server with ``log_statement = 'all'`` on the database runs a few turns, to count the
SQL statements one turn costs (PostgreSQL's own log, as in nested_query.py).

    python bench/turns.py [--quick] [--seconds N]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import _harness as h
import asyncpg

CONCURRENCY = 16
TARGET_RATIO = 0.35
MAX_TURNS_PER_WORKER = 1_000_000  # a bound, never reached in practice
COUNT_TURNS = 5


async def service_phase(
    url: str, token: str, seconds: float, meter: h.CpuMeter
) -> tuple[list[float], float, str]:
    async with h.Client(url, token, connections=CONCURRENCY + 4) as client:
        sessions = [await h.create_session(client, f"turns {i}") for i in range(CONCURRENCY)]
        for sid in sessions:  # warm-up: prepared statements, agent construction paths
            for n in range(3):
                await h.send_turn(client, sid, f"warm up {n}")
        latencies: list[float] = []
        start = time.perf_counter()
        end = start + seconds
        last_done = start

        async def worker(i: int, sid: str) -> None:
            nonlocal last_done
            for n in range(MAX_TURNS_PER_WORKER):
                if time.perf_counter() >= end:
                    return
                latencies.append(
                    await h.send_turn(client, sid, f"hello from worker {i}, turn {n}: how are you")
                )
                last_done = time.perf_counter()

        meter.start()
        await asyncio.gather(*(worker(i, s) for i, s in enumerate(sessions)))
        wall = last_done - start
        return latencies, wall, meter.stop()


RAW_UPDATE = """UPDATE sessions SET last_sequence = last_sequence + 2, message_count = message_count + 2,
    last_activity_at = now(), updated_at = now() WHERE id = $1 RETURNING last_sequence"""
COPIED = (
    "role, content, tool_calls, tool_call_id, tool_name, model, requests, input_tokens, output_tokens, "
    "cost, processing_time_ms, metadata, model_message, part_group"
)
RAW_INSERT = f"""INSERT INTO messages (id, session_id, sequence, run_id, created_at, {COPIED})
    VALUES ($1, $2, $3, $4, clock_timestamp(), {", ".join(f"${i}" for i in range(5, 19))})"""


async def raw_phase(db_url: str, seconds: float, meter: h.CpuMeter) -> tuple[list[float], float, str]:
    """The same writes a turn makes to messages and sessions, with nothing else around them."""
    conn = await asyncpg.connect(h.asyncpg_url(db_url))
    try:
        user_id, agent_id = await conn.fetchrow("SELECT user_id, agent_id FROM sessions LIMIT 1")
        # Rows exactly as the service wrote them in phase 1 (the last user message and its reply).
        reply = await conn.fetchrow(
            f"SELECT run_id, {COPIED} FROM messages WHERE role = 'assistant' ORDER BY created_at DESC LIMIT 1"
        )
        prompt = await conn.fetchrow(
            f"SELECT run_id, {COPIED} FROM messages WHERE role = 'user' AND run_id = $1", reply["run_id"]
        )
        rows = {r["role"]: tuple(r.values())[1:] for r in (prompt, reply) if r is not None}
        assert set(rows) == {"user", "assistant"}, rows.keys()
        sessions = []
        for i in range(CONCURRENCY):
            sid = uuid.uuid4()
            await conn.execute(
                """INSERT INTO sessions (id, user_id, agent_id, title, state, state_version, metadata, is_active,
                       last_sequence, message_count, created_at, updated_at, last_activity_at)
                   VALUES ($1, $2, $3, $4, '{}', 0, '{}', true, 0, 0, now(), now(), now())""",
                sid,
                user_id,
                agent_id,
                f"raw {i}",
            )
            sessions.append(sid)
    finally:
        await conn.close()

    pool = await asyncpg.create_pool(h.asyncpg_url(db_url), min_size=CONCURRENCY, max_size=CONCURRENCY)
    try:
        latencies: list[float] = []

        async def one_turn(c: asyncpg.Connection, sid: uuid.UUID) -> None:
            async with c.transaction():
                last = await c.fetchval(RAW_UPDATE, sid)
                await c.execute(RAW_INSERT, uuid.uuid4(), sid, last - 1, None, *rows["user"])
                await c.execute(RAW_INSERT, uuid.uuid4(), sid, last, None, *rows["assistant"])

        async def worker(sid: uuid.UUID, end: float) -> None:
            async with pool.acquire() as c:
                for _ in range(MAX_TURNS_PER_WORKER):
                    if time.perf_counter() >= end:
                        return
                    t0 = time.perf_counter()
                    await one_turn(c, sid)
                    latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(s, time.perf_counter() + 1.0) for s in sessions))  # warm-up
        latencies.clear()
        meter.start()
        start = time.perf_counter()
        await asyncio.gather(*(worker(s, start + seconds) for s in sessions))
        wall = time.perf_counter() - start
        return latencies, wall, meter.stop()
    finally:
        await pool.close()


async def count_phase(url: str, token: str, log: h.StatementLog) -> tuple[float, list[str]]:
    async with h.Client(url, token) as client:
        sid = await h.create_session(client, "count")
        for n in range(2):
            await h.send_turn(client, sid, f"warm up {n}")
        await asyncio.sleep(0.3)
        log.mark()
        for n in range(COUNT_TURNS):
            await h.send_turn(client, sid, f"counting turn {n}")
        await asyncio.sleep(0.5)  # the run's last writes happen just before the HTTP answer
        stmts = log.since_mark()
        log.mark()
        await h.send_turn(client, sid, "one more turn")
        await asyncio.sleep(0.5)
        return len(stmts) / COUNT_TURNS, log.since_mark()


def run(args) -> h.Report:
    loop_name = h.install_uvloop()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    raw_seconds = min(seconds, 10.0)
    report = h.Report()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp, h.bench_database("turns") as db_url:
        db_name = db_url.rsplit("/", 1)[-1]
        token = h.setup_database(db_url)
        with h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo") as server:
            print(
                f"service: server pid {server.pid} on {server.url}, {CONCURRENCY} sessions, {seconds:g}s, client {loop_name}"
            )
            try:
                svc_lat, svc_wall, svc_cpu = asyncio.run(
                    service_phase(server.url, token, seconds, h.CpuMeter(db_name, server.pid))
                )
            except h.Stuck as exc:
                h.fail_stuck(report, exc, db_url)
        print(f"raw asyncpg: {CONCURRENCY} connections, {raw_seconds:g}s")
        raw_lat, raw_wall, raw_cpu = asyncio.run(raw_phase(db_url, raw_seconds, h.CpuMeter(db_name)))

        async def locate() -> Path | None:
            async with h.db_conn(db_url) as conn:
                path = await h.StatementLog.locate(conn)
                if path is not None:
                    await conn.execute(f"ALTER DATABASE \"{db_name}\" SET log_statement = 'all'")
                return path

        counted = None
        log_path = asyncio.run(locate())
        if log_path is not None:
            with h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo") as server:
                counted = asyncio.run(count_phase(server.url, token, h.StatementLog(db_name, log_path)))

    svc_rate = len(svc_lat) / svc_wall
    raw_rate = len(raw_lat) / raw_wall
    ratio = svc_rate / raw_rate
    ms = [x * 1000 for x in svc_lat]
    raw_ms = [x * 1000 for x in raw_lat]
    print()
    print(f"turns ({'quick' if args.quick else 'full'} run, {time.monotonic() - t_start:.0f}s)")
    report.figure("service turns/s (sendMessage, 16 sessions)", f"{svc_rate:.0f}")
    report.figure("service turn latency p50", f"{h.percentile(ms, 50):.1f} ms")
    report.figure("service turn latency p99", f"{h.percentile(ms, 99):.1f} ms")
    report.figure("service turns completed", f"{len(svc_lat)} in {svc_wall:.1f}s")
    report.figure("raw asyncpg turns/s (same writes)", f"{raw_rate:.0f}")
    report.figure("raw turn latency p50", f"{h.percentile(raw_ms, 50):.2f} ms")
    report.figure("raw turn latency p99", f"{h.percentile(raw_ms, 99):.2f} ms")
    report.figure("ratio service / raw", f"{ratio:.3f}", f"≥ {TARGET_RATIO}", ratio >= TARGET_RATIO)
    print(f"  service phase {svc_cpu}")
    print(f"  raw phase     {raw_cpu}")
    if counted is not None:
        per_turn, one = counted
        report.figure("SQL statements per service turn", f"{per_turn:g}")
        report.figure("SQL statements per raw turn", "5", "(BEGIN, UPDATE, 2 INSERT, COMMIT)")
        kinds = Counter(" ".join(s.split())[:60] for s in one)
        print("  statements of one sendMessage turn, by kind (count x first 60 characters):")
        for text, c in kinds.most_common():
            print(f"    {c:>2} x {text}")
    return report


if __name__ == "__main__":
    parser = h.base_args(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="length of the service phase (default 20, quick 5)")
    h.main_wrapper(run, parser.parse_args())
    sys.exit(0)
