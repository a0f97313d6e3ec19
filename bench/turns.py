"""Chat-turn throughput: Parley's sendMessage (echo model, 1 worker) against the lean peer and raw
asyncpg doing the same writes, on the same database with the same client code.

Phase 1: Parley and the lean peer (bench/lean_peer.py: ``POST /send``, a hand-written Starlette +
pydantic-ai + asyncpg service, echo model, 1 worker) both up; 16 concurrent sessions on each,
every session sending turns in a loop over HTTP. They take turns: Parley for half the time, the
peer for half, Parley, the peer (the machine is shared, so a burst of other work hits both).
Phase 2: the servers are stopped; raw asyncpg, 16 concurrent connections, each turn one transaction
that updates the session row (next sequences) and inserts a user message row and a reply row,
copied column for column from rows the service wrote in phase 1, into the same database.
Phase 3: with ``log_statement = 'all'`` on the database, a Parley server and then the lean peer run
a few turns each, to count the SQL statements one turn costs (PostgreSQL's own log, as in
nested_query.py).

    python bench/turns.py [--quick] [--seconds N]

Targets: Parley / lean peer turns/s >= 1.0; Parley / raw >= 0.35.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import _harness as h
import asyncpg
from lean_peer import LeanPeer, PeerClient

CONCURRENCY = 16
TARGET_RATIO = 0.35  # Parley / raw asyncpg
TARGET_PEER_RATIO = 1.0  # Parley / lean peer
MAX_TURNS_PER_WORKER = 1_000_000  # a bound, never reached in practice
COUNT_TURNS = 5
SLICES = 2  # measured slices per service, alternating


Turn = Callable[[str, str], Awaitable[float]]  # (session id, content) -> seconds
Phase = tuple[list[float], float, str]  # latencies (s), wall time (s), CPU note


@dataclass
class Side:
    """One service under test and what its measured slices added up to."""

    label: str
    pid: int
    turn: Turn
    sessions: list[str]
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0  # seconds measured
    server_cpu: float = 0.0  # CPU seconds of the server process meanwhile
    notes: list[str] = field(default_factory=list)  # CPU note of each slice

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


async def warm_up(side: Side) -> None:
    for sid in side.sessions:  # prepared statements, agent construction paths
        for n in range(3):
            await side.turn(sid, f"warm up {n}")


async def turns_slice(side: Side, seconds: float, meter: h.CpuMeter) -> None:
    """Every session calls the side's ``turn`` in a loop for ``seconds``."""
    start = time.perf_counter()
    end = start + seconds
    last_done = start

    async def worker(i: int, sid: str) -> None:
        nonlocal last_done
        for n in range(MAX_TURNS_PER_WORKER):
            if time.perf_counter() >= end:
                return
            side.latencies.append(await side.turn(sid, f"hello from worker {i}, turn {n}: how are you"))
            last_done = time.perf_counter()

    cpu0 = h.cpu_seconds(side.pid)
    meter.start()
    await asyncio.gather(*(worker(i, s) for i, s in enumerate(side.sessions)))
    side.notes.append(meter.stop())
    side.server_cpu += h.cpu_seconds(side.pid) - cpu0
    side.wall += last_done - start


async def service_phases(
    server: h.Server, token: str, peer: LeanPeer, seconds: float, db_name: str
) -> tuple[Side, Side]:
    """Parley and the lean peer, both up, take turns in SLICES slices each (P L P L ...), so a
    burst of other work on the machine hits both."""
    async with (
        h.Client(server.url, token, connections=CONCURRENCY + 4) as client,
        PeerClient(peer.url, connections=CONCURRENCY + 4) as peer_client,
    ):
        parley = Side(
            "Parley",
            server.pid,
            lambda sid, text: h.send_turn(client, sid, text),
            [await h.create_session(client, f"turns {i}") for i in range(CONCURRENCY)],
        )
        lean = Side(
            "lean peer",
            peer.pid,
            peer_client.send_turn,
            [await peer_client.create_session() for _ in range(CONCURRENCY)],
        )
        for side in (parley, lean):
            await warm_up(side)
        for _ in range(SLICES):
            for side in (parley, lean):
                await turns_slice(side, seconds / SLICES, h.CpuMeter(db_name, side.pid))
        return parley, lean


RAW_UPDATE = """UPDATE sessions SET last_sequence = last_sequence + 2, message_count = message_count + 2,
    last_activity_at = now(), updated_at = now() WHERE id = $1 RETURNING last_sequence"""
COPIED = (
    "role, content, tool_calls, tool_call_id, tool_name, model, requests, input_tokens, output_tokens, "
    "cost, processing_time_ms, metadata, model_message, part_group"
)
RAW_INSERT = f"""INSERT INTO messages (id, session_id, sequence, run_id, created_at, {COPIED})
    VALUES ($1, $2, $3, $4, clock_timestamp(), {", ".join(f"${i}" for i in range(5, 19))})"""


async def raw_phase(db_url: str, seconds: float, meter: h.CpuMeter) -> Phase:
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


async def count_phase(
    create_session: Callable[[], Awaitable[str]], turn: Turn, log: h.StatementLog
) -> tuple[float, list[str]]:
    """Statements per turn over COUNT_TURNS turns, and the statements of one more turn."""
    sid = await create_session()
    for n in range(2):
        await turn(sid, f"warm up {n}")
    await asyncio.sleep(0.3)
    log.mark()
    for n in range(COUNT_TURNS):
        await turn(sid, f"counting turn {n}")
    await asyncio.sleep(0.5)  # the run's last writes happen just before the HTTP answer
    stmts = log.since_mark()
    log.mark()
    await turn(sid, "one more turn")
    await asyncio.sleep(0.5)
    return len(stmts) / COUNT_TURNS, log.since_mark()


async def count_parley(url: str, token: str, log: h.StatementLog) -> tuple[float, list[str]]:
    async with h.Client(url, token) as client:
        return await count_phase(
            lambda: h.create_session(client, "count"), lambda sid, text: h.send_turn(client, sid, text), log
        )


async def count_peer(url: str, log: h.StatementLog) -> tuple[float, list[str]]:
    async with PeerClient(url) as client:
        return await count_phase(client.create_session, client.send_turn, log)


def print_kinds(label: str, statements: list[str]) -> None:
    kinds = Counter(" ".join(s.split())[:60] for s in statements)
    print(f"  statements of one {label} turn, by kind (count x first 60 characters):")
    for text, c in kinds.most_common():
        print(f"    {c:>2} x {text}")


def side_figures(report: h.Report, side: Side) -> None:
    ms = [x * 1000 for x in side.latencies]
    report.figure(
        f"{side.label} turn latency p50 / p99",
        f"{h.percentile(ms, 50):.1f} / {h.percentile(ms, 99):.1f} ms",
    )
    report.figure(f"{side.label} turns completed", f"{len(side.latencies)} in {side.wall:.1f}s")
    # Less sensitive to other work on the machine than turns/s (which also needs the CPU time).
    report.figure(
        f"{side.label} server CPU per turn", f"{1000 * side.server_cpu / len(side.latencies):.1f} ms"
    )


def run(args: argparse.Namespace) -> h.Report:
    loop_name = h.install_uvloop()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    raw_seconds = min(seconds, 10.0)
    report = h.Report()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp, h.bench_database("turns") as db_url:
        db_name = db_url.rsplit("/", 1)[-1]
        token = h.setup_database(db_url)
        with (
            h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo") as server,
            LeanPeer(db_url, "echo", log_dir=Path(tmp)) as peer,
        ):
            print(
                f"Parley (pid {server.pid}) and the lean peer (pid {peer.pid}): {CONCURRENCY} sessions each, "
                f"{seconds:g}s each in {SLICES} alternating slices, client {loop_name}"
            )
            try:
                parley, lean = asyncio.run(service_phases(server, token, peer, seconds, db_name))
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

        counted = peer_counted = None
        log_path = asyncio.run(locate())
        if log_path is not None:
            log = h.StatementLog(db_name, log_path)
            with h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo") as server:
                counted = asyncio.run(count_parley(server.url, token, log))
            with LeanPeer(db_url, "echo", log_dir=Path(tmp)) as peer:
                peer_counted = asyncio.run(count_peer(peer.url, log))

    raw_rate = len(raw_lat) / raw_wall
    print()
    print(f"turns ({'quick' if args.quick else 'full'} run, {time.monotonic() - t_start:.0f}s)")
    report.figure("Parley turns/s (sendMessage, 16 sessions)", f"{parley.rate:.0f}")
    side_figures(report, parley)
    report.figure("lean peer turns/s (POST /send, 16 sessions)", f"{lean.rate:.0f}")
    side_figures(report, lean)
    report.figure("raw asyncpg turns/s (same writes)", f"{raw_rate:.0f}")
    raw_ms = [x * 1000 for x in raw_lat]
    report.figure(
        "raw turn latency p50 / p99", f"{h.percentile(raw_ms, 50):.2f} / {h.percentile(raw_ms, 99):.2f} ms"
    )
    peer_ratio = parley.rate / lean.rate
    report.figure(
        "ratio Parley / lean peer",
        f"{peer_ratio:.3f}",
        f"≥ {TARGET_PEER_RATIO}",
        peer_ratio >= TARGET_PEER_RATIO,
    )
    ratio = parley.rate / raw_rate
    report.figure("ratio Parley / raw", f"{ratio:.3f}", f"≥ {TARGET_RATIO}", ratio >= TARGET_RATIO)
    report.figure("ratio lean peer / raw", f"{lean.rate / raw_rate:.3f}")
    for side in (parley, lean):
        for i, note in enumerate(side.notes, 1):
            print(f"  {side.label} slice {i}: {note}")
    print(f"  raw phase: {raw_cpu}")
    if counted is not None and peer_counted is not None:
        report.figure("SQL statements per Parley turn", f"{counted[0]:g}")
        report.figure("SQL statements per lean peer turn", f"{peer_counted[0]:g}")
        report.figure("SQL statements per raw turn", "5", "(BEGIN, UPDATE, 2 INSERT, COMMIT)")
        print_kinds("sendMessage", counted[1])
        print_kinds("lean peer", peer_counted[1])
    return report


OPS_ON = {"PARLEY_METRICS": "true", "PARLEY_LOG_FORMAT": "json", "PARLEY_LOG_LEVEL": "info"}
OPS_OFF = {"PARLEY_METRICS": "false", "PARLEY_LOG_FORMAT": "text", "PARLEY_LOG_LEVEL": "info"}
OPS_SLICES = 4


async def operations_phases(
    on: h.Server, off: h.Server, token: str, seconds: float, db_name: str
) -> list[Side]:
    """The same turns on two Parley servers, both up, in alternating slices: operations on, off."""
    async with (
        h.Client(on.url, token, connections=CONCURRENCY + 4) as on_client,
        h.Client(off.url, token, connections=CONCURRENCY + 4) as off_client,
    ):
        sides = []
        for label, server, client in (("metrics + JSON logs", on, on_client), ("both off", off, off_client)):

            async def turn(sid: str, text: str, client: h.Client = client) -> float:
                return await h.send_turn(client, sid, text)

            sessions = [await h.create_session(client, f"ops {i}") for i in range(CONCURRENCY)]
            sides.append(Side(label, server.pid, turn, sessions))
        for side in sides:
            await warm_up(side)
        for _ in range(OPS_SLICES):
            for side in sides:
                await turns_slice(side, seconds / OPS_SLICES, h.CpuMeter(db_name, side.pid))
        return sides


def run_operations(args: argparse.Namespace) -> h.Report:
    """--operations: the overhead of PARLEY_METRICS + PARLEY_LOG_FORMAT=json on these turns."""
    loop_name = h.install_uvloop()
    seconds = args.seconds or (8.0 if args.quick else 40.0)
    report = h.Report()
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp, h.bench_database("ops") as db_url:
        db_name = db_url.rsplit("/", 1)[-1]
        token = h.setup_database(db_url)
        with (
            h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo", **OPS_ON) as on,
            h.Server(db_url, log_dir=Path(tmp), PARLEY_MODEL="echo", **OPS_OFF) as off,
        ):
            print(
                f"Parley with metrics + JSON logs (pid {on.pid}) and with both off (pid {off.pid}): "
                f"{CONCURRENCY} sessions each, {seconds:g}s each in {OPS_SLICES} alternating slices, client {loop_name}"
            )
            try:
                with_ops, without = asyncio.run(operations_phases(on, off, token, seconds, db_name))
            except h.Stuck as exc:
                h.fail_stuck(report, exc, db_url)
            json_lines = sum(1 for _ in on.log_path.open())
    for side in (with_ops, without):
        report.figure(f"Parley, {side.label}: turns/s", f"{side.rate:.1f}")
        side_figures(report, side)
    ratio = with_ops.rate / without.rate
    cpu_ratio = (with_ops.server_cpu / len(with_ops.latencies)) / (
        without.server_cpu / len(without.latencies)
    )
    report.figure("turns/s ratio on / off", f"{ratio:.3f}", "≥ 0.95", ratio >= 0.95)
    report.figure("server CPU per turn ratio on / off", f"{cpu_ratio:.3f}", "≤ 1.05", cpu_ratio <= 1.05)
    report.figure("JSON log lines written", f"{json_lines}")
    for side in (with_ops, without):
        for i, note in enumerate(side.notes, 1):
            print(f"  {side.label} slice {i}: {note}")
    return report


if __name__ == "__main__":
    parser = h.base_args(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="length of the service phase (default 20, quick 5)")
    parser.add_argument(
        "--operations", action="store_true", help="instead: metrics + JSON logs on vs off, side by side"
    )
    options = parser.parse_args()
    h.main_wrapper(run_operations if options.operations else run, options)
    sys.exit(0)
