"""Nested sessions → agent → messages query: latency over HTTP and SQL statements per request.

20 sessions x 200 messages (seeded through addMessages, 100 per call), then

    { sessions(first: 20) { totalCount edges { node { id agent { name } messageCount
        messages(last: 20) { totalCount edges { node { id role content sequence } } } } } } }

Statements are counted by PostgreSQL itself: the bench database gets
``log_statement = 'all'`` while a first server runs, and the lines of that database in the
server's log file are counted (every executed statement, BEGIN/COMMIT included, is one line).
Latency is measured on a second server started after ``log_statement`` is reset, so logging
costs nothing there.

    python bench/nested_query.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import _harness as h

SESSIONS = 20
MESSAGES = 200
QUERY = """query($n: Int!) { sessions(first: $n) { totalCount edges { node { id agent { name } messageCount
  messages(last: 20) { totalCount edges { node { id role content sequence } } } } } } }"""
TARGET_P50_MS = 30.0
TARGET_STATEMENTS = 6
COUNT_REPEATS = 5


async def seed(url: str, token: str) -> None:
    async with h.Client(url, token) as client:
        ids = [await h.create_session(client, f"bench session {i}") for i in range(SESSIONS)]
        sem = asyncio.Semaphore(4)

        async def fill(sid: str) -> None:
            async with sem:
                await h.seed_messages(client, sid, MESSAGES)

        await asyncio.gather(*(fill(s) for s in ids))


def check_shape(data: dict, n: int) -> None:
    conn = data["sessions"]
    assert conn["totalCount"] == SESSIONS, conn["totalCount"]
    assert len(conn["edges"]) == n, len(conn["edges"])
    for edge in conn["edges"]:
        node = edge["node"]
        assert node["messageCount"] == MESSAGES, node["messageCount"]
        msgs = node["messages"]
        assert msgs["totalCount"] == MESSAGES and len(msgs["edges"]) == 20, msgs["totalCount"]
        seqs = [e["node"]["sequence"] for e in msgs["edges"]]
        assert seqs == list(range(MESSAGES - 19, MESSAGES + 1)), seqs


async def count_statements(
    url: str, token: str, log: h.StatementLog
) -> dict[int, tuple[float, float, list[str]]]:
    """Per page size: (statements per request, non-transaction-control per request, one request's SQL)."""
    out = {}
    async with h.Client(url, token) as client:
        for n in (5, 20):
            check_shape(await client.gql(QUERY, n=n), n)  # warm: prepared statements, type introspection
        for n in (5, 20):
            await asyncio.sleep(0.2)
            log.mark()
            for _ in range(COUNT_REPEATS):
                await client.gql(QUERY, n=n)
            await asyncio.sleep(0.3)  # backends write their log line before answering; be generous
            stmts = log.since_mark()
            plain = [s for s in stmts if not h.is_transaction_control(s)]
            log.mark()
            await client.gql(QUERY, n=n)
            await asyncio.sleep(0.3)
            out[n] = (len(stmts) / COUNT_REPEATS, len(plain) / COUNT_REPEATS, log.since_mark())
    return out


async def measure_latency(
    url: str, token: str, warmup: int, requests: int, meter: h.CpuMeter
) -> tuple[list[float], str]:
    async with h.Client(url, token) as client:
        check_shape(await client.gql(QUERY, n=20), 20)
        for _ in range(warmup):
            await client.gql(QUERY, n=20)
        times = []
        meter.start()
        for _ in range(requests):
            elapsed, _data = await client.timed(QUERY, n=20)
            times.append(elapsed * 1000)
        return times, meter.stop()


def run(args) -> h.Report:
    loop_name = h.install_uvloop()
    requests = 200 if args.quick else 500
    warmup = 20 if args.quick else 50
    report = h.Report()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp, h.bench_database("nested") as db_url:
        db_name = db_url.rsplit("/", 1)[-1]
        token = h.setup_database(db_url)

        async def locate() -> Path | None:
            async with h.db_conn(db_url) as conn:
                path = await h.StatementLog.locate(conn)
                if path is not None:
                    await conn.execute(f"ALTER DATABASE \"{db_name}\" SET log_statement = 'all'")
                return path

        log_path = asyncio.run(locate())
        counts = None
        with h.Server(db_url, log_dir=Path(tmp)) as server:
            print(
                f"server pid {server.pid} on {server.url}; seeding {SESSIONS} sessions x {MESSAGES} messages"
            )
            t0 = time.monotonic()
            asyncio.run(seed(server.url, token))
            print(f"seeded in {time.monotonic() - t0:.1f}s")
            if log_path is not None:
                counts = asyncio.run(count_statements(server.url, token, h.StatementLog(db_name, log_path)))

        async def reset() -> None:
            async with h.db_conn(db_url) as conn:
                await conn.execute(f'ALTER DATABASE "{db_name}" RESET log_statement')

        asyncio.run(reset())
        with h.Server(db_url, log_dir=Path(tmp)) as server:
            print(
                f"latency: server pid {server.pid}, client loop {loop_name}, {warmup} warm-up + {requests} requests"
            )
            times, cpu = asyncio.run(
                measure_latency(server.url, token, warmup, requests, h.CpuMeter(db_name, server.pid))
            )

    print()
    print(f"nested_query ({'quick' if args.quick else 'full'} run, {time.monotonic() - t_start:.0f}s)")
    p50, p99 = h.percentile(times, 50), h.percentile(times, 99)
    report.figure(
        "p50 latency, sessions(first: 20)", f"{p50:.1f} ms", f"≤ {TARGET_P50_MS:g} ms", p50 <= TARGET_P50_MS
    )
    report.figure("p99 latency, sessions(first: 20)", f"{p99:.1f} ms")
    report.figure("requests timed (one at a time)", f"{len(times)}")
    print(f"  during the timed requests: {cpu}")
    if counts is None:
        report.figure("SQL statements per request", "unavailable", "server log not readable", False)
    else:
        for n, (total, _plain, _sql) in counts.items():
            report.figure(
                f"SQL statements per request, first: {n}",
                f"{total:g}",
                f"≤ {TARGET_STATEMENTS}",
                total <= TARGET_STATEMENTS,
            )
        constant = counts[5][0] == counts[20][0]
        report.figure(
            "  … same for first: 5 and first: 20", "yes" if constant else "no", "constant", constant
        )
        report.figure("  … of which not BEGIN/COMMIT (first: 20)", f"{counts[20][1]:g}")
        print("\nstatements of one sessions(first: 20) request, as PostgreSQL logged them:")
        for i, sql in enumerate(counts[20][2], 1):
            print(f"  {i}. {' '.join(sql.split())[:150]}")
        kinds = Counter(" ".join(s.split())[:40] for s in counts[20][2])
        if any(c > 1 for c in kinds.values()):
            print("  repeated:", {k: c for k, c in kinds.items() if c > 1})
    return report


if __name__ == "__main__":
    parser = h.base_args(__doc__.splitlines()[0])
    h.main_wrapper(run, parser.parse_args())
    sys.exit(0)
