"""Streaming throughput and added latency: 100 concurrent ``chat`` subscriptions on one worker,
against the lean peer and the ceiling of a raw Starlette WebSocket endpoint on the same machine.

Parley: one ``parley serve`` worker on a fresh database; agent model ``bench:ts200``
(bench/stream_models.py: 200 text deltas at once, like ``script:fast200``, each delta the token
``t=<time.time()>;`` taken when the model yields it). 100 sessions, one ``chat`` subscription
each (graphql-transport-ws over ``websockets``), all connected and acknowledged before the clock
starts, then subscribed at once. A stream's model deltas are its final TextDelta ``index`` (200
however the server coalesced them; the client checks that it received as many stamps). Added
latency per received TextDelta = receipt time - the newest emission time inside it (p50/p99),
and - the oldest (worst case for the deltas it merged).

Lean peer (bench/lean_peer.py): the hand-written Starlette + pydantic-ai + asyncpg service, same
model function (``LEAN_PEER_MODEL=bench:ts200``), same database, same client code; it loads and
stores the history like a turn and sends every text delta as its own ``next`` message.

Raw ceiling: a tiny Starlette app (this file, ``--raw-server``) under uvicorn, 1 worker, same
loop and WebSocket implementation as ``parley serve``; it speaks just enough graphql-transport-ws
for the same client code and answers a ``subscribe`` with 200 ``next`` messages, one per delta,
shaped like Parley's TextDelta payload (timestamp taken at send), then ``complete``.

The client side runs in ``--clients`` processes (default 2), the connections split between
them: one asyncio process parsing 20,000 raw messages is slower than the raw server sending
them, so with a single client process the "ceiling" would measure the client. CPU per process
group is printed so the bottleneck of each phase is visible.

    python bench/stream.py [--quick] [--strict] [--rounds N] [--clients N]   # --quick: 1 raw round, not 3

Targets: Parley deltas/s / lean peer deltas/s >= 1.0; Parley / raw >= 0.5; p99 added latency
(newest stamp) <= 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h
import httpx
from lean_peer import LeanPeer, PeerClient

sys.path.insert(0, str(h.REPO))
from tests.wsclient import CHAT  # the subscription document the tests use

STREAMS = 100
DELTAS = 200
TARGET_RATIO = 0.5  # Parley / raw
TARGET_PEER_RATIO = 1.0  # Parley / lean peer
TARGET_P99_MS = 25.0
MODEL = "bench:ts200"
PLUGINS = "tests.plugins,bench.stream_models"
CONNECT_TIMEOUT_S = 60.0
WARMUP_STREAMS = 5
RAW_ROUNDS = 3
TOKEN = re.compile(r"t=([0-9.]+);")
CREATE_AGENT = "mutation($n: String!, $m: String!) { createAgent(input: {name: $n, model: $m}) { name } }"
CREATE_SESSION = "mutation($a: String) { createSession(input: {agentName: $a}) { id } }"


# --- the raw ceiling: a tiny Starlette app ---------------------------------------------------


def raw_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def endpoint(ws: WebSocket) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            await _serve(ws)

    async def _serve(ws: WebSocket) -> None:
        await ws.accept(subprotocol="graphql-transport-ws")
        init = json.loads(await ws.receive_text())
        assert init["type"] == "connection_init"
        await ws.send_text('{"type":"connection_ack"}')
        while True:
            msg = json.loads(await ws.receive_text())
            if msg["type"] != "subscribe":
                continue
            op, run_id = msg["id"], os.urandom(16).hex()
            for i in range(1, DELTAS + 1):
                await ws.send_text(
                    json.dumps(
                        {
                            "id": op,
                            "type": "next",
                            "payload": {
                                "data": {
                                    "chat": {
                                        "__typename": "TextDelta",
                                        "runId": run_id,
                                        "index": i,
                                        "delta": f"t={time.time():.6f};",
                                    }
                                }
                            },
                        }
                    )
                )
            await ws.send_text(json.dumps({"id": op, "type": "complete"}))

    return Starlette(routes=[WebSocketRoute("/graphql", endpoint)])


def serve_raw(port: int) -> None:
    import uvicorn

    uvicorn.run(
        "stream:raw_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # as `parley serve`
    )


class RawServer:
    def __init__(self) -> None:
        self.port = h.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RawServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--raw-server", str(self.port)],
            cwd=Path(__file__).resolve().parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("raw server exited")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("raw server did not start")

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# --- the client side (one or more processes) -------------------------------------------------


@dataclass(frozen=True)
class Streams:
    """What every stream of a round asks for."""

    content: str = "go"  # the chat message (bench:paced reads its token count from the last word)
    deltas: int = DELTAS  # model deltas a stream ends with
    spread_s: float = 0.0  # subscriptions start evenly over this window (0: all at once)


async def _client(
    url: str,
    token: str,
    sessions: list[str],
    ready: Any,
    start: Any,
    limit_s: float,
    streams: Streams,
    delays: list[float],
) -> dict[str, Any]:
    import websockets
    from websockets.typing import Subprotocol

    socks = []
    for _ in sessions:
        ws = await websockets.connect(
            url, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None, open_timeout=30
        )
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        ack = json.loads(await ws.recv())
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        socks.append(ws)
    ready.send("ready")
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, start.wait, CONNECT_TIMEOUT_S):
        raise RuntimeError("never told to start")

    newest: list[float] = []
    oldest: list[float] = []
    done_at: list[float] = []
    last_index = [0] * len(sessions)
    # Per stream: every emission stamp received (the model deltas delivered, whatever the framing).
    stamps: list[list[float]] = [[] for _ in sessions]
    counts = {"delta_events": 0, "other_events": 0}
    last_at = [0.0]
    errors: list[str] = []

    async def one(k: int, ws: Any, sid: str) -> None:
        await asyncio.sleep(delays[k])
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": CHAT, "variables": {"s": sid, "c": streams.content}},
                }
            )
        )
        while True:
            raw = await ws.recv()
            now = time.time()
            msg = json.loads(raw)
            kind = msg["type"]
            if kind == "ping":
                await ws.send('{"type":"pong"}')
                continue
            if kind == "complete":
                return
            if kind != "next" or msg["payload"].get("errors"):
                errors.append(str(msg)[:300])
                return
            event = msg["payload"]["data"]["chat"]
            if event["__typename"] != "TextDelta":
                counts["other_events"] += 1
                continue
            counts["delta_events"] += 1
            last_at[0] = now
            ts = [float(x) for x in TOKEN.findall(event["delta"])]
            if ts:
                newest.append(now - max(ts))
                oldest.append(now - min(ts))
                stamps[k].extend(ts)
            if event["index"] <= last_index[k]:
                errors.append(f"index went from {last_index[k]} to {event['index']}")
            last_index[k] = event["index"]
            if last_index[k] >= streams.deltas:
                done_at.append(now)

    tasks = [
        asyncio.create_task(one(k, ws, s)) for k, (ws, s) in enumerate(zip(socks, sessions, strict=True))
    ]
    _, pending = await asyncio.wait(tasks, timeout=limit_s)
    for task in pending:
        task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            errors.append(repr(task.exception())[:300])
    for ws in socks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
    errors += [
        f"{len(ts)} stamps but index {i}" for ts, i in zip(stamps, last_index, strict=True) if len(ts) != i
    ]
    return {
        "newest": newest,
        "oldest": oldest,
        "done_at": done_at,
        "final_index": last_index,
        # The model's own pace: mean interval between a stream's first and last emission.
        "pace": [(ts[-1] - ts[0]) / (len(ts) - 1) for ts in stamps if len(ts) > 1],
        "unfinished": len(pending),
        "last_at": last_at[0],
        "errors": errors,
        **counts,
    }


def _client_main(
    url: str,
    token: str,
    sessions: list[str],
    conn: Any,
    start: Any,
    timeout: float,
    streams: Streams,
    delays: list[float],
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    h.install_uvloop()
    try:
        result = asyncio.run(_client(url, token, sessions, conn, start, timeout, streams, delays))
        conn.send(("result", result))
    except BaseException as exc:  # report, then exit
        conn.send(("error", repr(exc)))


def _pg_cpu(db: str | None) -> float:
    return sum(h.cpu_seconds(p) for p in h.backend_pids(db)) if db else 0.0


def _cpu_sample(server_pid: int, client_pids: list[int], db: str | None) -> tuple[float, ...]:
    return (
        h.cpu_seconds(server_pid),
        sum(h.cpu_seconds(p) for p in client_pids),
        _pg_cpu(db),
        h.machine_busy_seconds(),
    )


def run_round(
    url: str,
    token: str,
    sessions: list[str],
    clients: int,
    server_pid: int,
    db: str | None,
    timeout: float,
    streams: Streams = Streams(),
) -> dict[str, Any]:
    """Connect every session's socket in ``clients`` processes, then start the streams (at once, or
    evenly over ``streams.spread_s``)."""
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs, pipes = [], []
    results = []
    delays = [streams.spread_s * i / len(sessions) for i in range(len(sessions))]
    try:
        for i in range(clients):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_client_main,
                args=(url, token, sessions[i::clients], child, start, timeout, streams, delays[i::clients]),
                daemon=True,
            )
            p.start()
            procs.append(p)
            pipes.append(parent)
        for pipe in pipes:
            if not pipe.poll(CONNECT_TIMEOUT_S):
                raise RuntimeError("a client process did not connect in time")
            msg = pipe.recv()
            if msg != "ready":
                raise RuntimeError(f"client failed: {msg}")
        client_pids = [p.pid for p in procs if p.pid is not None]
        cpu0 = _cpu_sample(server_pid, client_pids, db)
        t0 = time.time()
        start.set()
        for pipe in pipes:
            if not pipe.poll(timeout + 15):
                raise RuntimeError("a client process did not report in time")
            kind, payload = pipe.recv()
            if kind != "result":
                raise RuntimeError(f"client failed: {payload}")
            results.append(payload)
        wall_cpu = time.time() - t0
        cpu1 = _cpu_sample(server_pid, client_pids, db)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
    lists = ("newest", "oldest", "done_at", "final_index", "pace", "errors")
    out: dict[str, Any] = {k: [] for k in lists}
    for k in ("delta_events", "other_events", "unfinished"):
        out[k] = sum(r[k] for r in results)
    for r in results:
        for k in lists:
            out[k].extend(r[k])
    # Wall time: from the start signal to the last delta any stream received.
    out["wall"] = max(1e-6, max(r["last_at"] for r in results) - t0)
    out["deltas"] = sum(out["final_index"])
    out["rate"] = out["deltas"] / out["wall"]
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    out["server_cpu_s"] = used[0]
    out["cpu"] = dict(
        zip(("server", "clients", "postgres", "machine"), (u / wall_cpu for u in used), strict=True)
    )
    return out


def cpu_note(cpu: dict[str, float]) -> str:
    others = max(0.0, cpu["machine"] - cpu["server"] - cpu["clients"] - cpu["postgres"])
    note = (
        f"CPU, % of one core ({os.cpu_count()} cores): server {100 * cpu['server']:.0f}%, "
        f"clients {100 * cpu['clients']:.0f}%, postgres {100 * cpu['postgres']:.0f}%, others {100 * others:.0f}%"
    )
    if others > 0.25:
        note += "  <- other work competed for the CPU"
    return note


# --- setup and diagnosis ---------------------------------------------------------------------


async def parley_sessions(url: str, admin: str, count: int, model: str) -> list[str]:
    """An agent running ``model`` (named after it) and ``count`` sessions of it."""
    agent = model.split(":")[-1]
    async with h.Client(url, admin, connections=16) as client:
        await client.gql(CREATE_AGENT, n=agent, m=model)
        sem = asyncio.Semaphore(16)

        async def one() -> str:
            async with sem:
                return str((await client.gql(CREATE_SESSION, a=agent))["createSession"]["id"])

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def peer_sessions(url: str, count: int) -> list[str]:
    async with PeerClient(url) as client:
        return [await client.create_session() for _ in range(count)]


def setup_parley(db_url: str) -> str:
    """Migrate the bench database and create an admin user; returns its token."""
    env = h.parley_env(db_url)
    h.run_parley(env, "migrate")
    return h.run_parley(env, "user", "create", "benchadmin", "--admin").strip().splitlines()[-1].strip()


def parley_server(db_url: str, args: argparse.Namespace) -> h.Server:
    """One ``parley serve`` worker that knows the timestamped models (PARLEY_PLUGINS)."""
    return h.Server(
        db_url,
        workers=1,
        PARLEY_PLUGINS=PLUGINS + "".join("," + m for m in args.extra_plugin),
        PYTHONPATH=os.pathsep.join([str(h.REPO), *args.extra_path, os.environ.get("PYTHONPATH", "")]),
        PARLEY_LOG_LEVEL="warning",
    )


def ws_url(server: h.Server) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


@dataclass(frozen=True)
class Target:
    """A server under test, as the client processes see it."""

    label: str
    ws_url: str
    token: str
    pid: int
    db: str | None  # the database whose PostgreSQL backends' CPU is counted


def parley_and_peer(
    server: h.Server, peer: LeanPeer, admin: str, db: str, count: int, model: str
) -> list[tuple[Target, list[str]]]:
    """Parley and the lean peer as targets, each with ``count`` new sessions running ``model``."""
    return [
        (
            Target("parley", ws_url(server), admin, server.pid, db),
            asyncio.run(parley_sessions(server.url, admin, count, model)),
        ),
        (Target("lean peer", ws_url(peer), "x", peer.pid, db), asyncio.run(peer_sessions(peer.url, count))),
    ]


def side_by_side(
    targets: list[tuple[Target, list[str]]],
    sizes: list[int],
    args: argparse.Namespace,
    streams: Streams,
    warm: Streams,
) -> dict[str, list[dict[str, Any]]]:
    """A warm-up round of WARMUP_STREAMS on every target (imports, prepared statements, pool
    growth), then for each size a round on every target in turn, each on the next unused sessions
    of that target: a burst of other work on the shared machine hits all of them. A target whose
    streams did not all end gets no further rounds (wedged: they would measure the hang)."""
    for t, sessions in targets:
        warm_r = run_round(t.ws_url, t.token, sessions[:WARMUP_STREAMS], 1, t.pid, t.db, 30, warm)
        print_round(f"{t.label} warm-up", 0, warm_r)
    taken = dict.fromkeys((t.label for t, _ in targets), WARMUP_STREAMS)
    out: dict[str, list[dict[str, Any]]] = {t.label: [] for t, _ in targets}
    for i, n in enumerate(sizes, 1):
        for t, sessions in targets:
            if out[t.label] and out[t.label][-1]["unfinished"]:
                continue
            chunk = sessions[taken[t.label] : taken[t.label] + n]
            taken[t.label] += n
            r = run_round(t.ws_url, t.token, chunk, args.clients, t.pid, t.db, args.timeout, streams)
            out[t.label].append(r)
            print_round(f"{t.label}, {n} streams,", i, r)
    return out


STUCK_SQL = """
SELECT (SELECT count(*) FROM runs WHERE status = 'running') AS running,
       count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_tx,
       count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') AS lock_waits,
       mode() WITHIN GROUP (ORDER BY left(regexp_replace(query, '\\s+', ' ', 'g'), 60))
           FILTER (WHERE state = 'idle in transaction') AS idle_in_tx_query
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"""


async def _diagnose(db_url: str, server_pid: int) -> dict[str, Any]:
    async with h.db_conn(db_url) as conn:
        cpu0 = h.cpu_seconds(server_pid)
        await asyncio.sleep(1.0)
        row = dict(await conn.fetchrow(STUCK_SQL))
        row["server_cpu_1s"] = h.cpu_seconds(server_pid) - cpu0
    return row


def print_round(label: str, i: int, r: dict[str, Any]) -> None:
    streams = len(r["final_index"])
    print(
        f"    {label} round {i}: {r['deltas']} model deltas in {r['wall'] * 1000:.0f} ms = {r['rate']:,.0f}/s; "
        f"{r['delta_events']} TextDelta events (+{r['other_events']} other); "
        f"{streams - r['unfinished']}/{streams} streams ended",
        flush=True,
    )
    print(f"      {cpu_note(r['cpu'])}", flush=True)
    if r["errors"]:
        print(f"      errors ({len(r['errors'])}): {r['errors'][:3]}", flush=True)


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(rounds, key=lambda r: r["rate"])[len(rounds) // 2]


# --- the benchmark ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> h.Report:
    loop_name = h.install_uvloop()
    report = h.Report()
    rounds = args.rounds
    print(
        f"stream: {STREAMS} concurrent chat subscriptions x {DELTAS} model deltas ({MODEL}), 1 worker; "
        f"{args.clients} client process(es) ({loop_name}); {rounds} measured round(s) on Parley and the "
        f"lean peer, {1 if args.quick else RAW_ROUNDS} on raw",
        flush=True,
    )
    stuck: dict[str, int] = {}
    streams = Streams()
    with h.bench_database("stream") as db_url:
        admin = setup_parley(db_url)
        db_name = db_url.rsplit("/", 1)[-1]
        need = WARMUP_STREAMS + STREAMS * rounds
        with parley_server(db_url, args) as server, LeanPeer(db_url, MODEL) as peer:
            targets = parley_and_peer(server, peer, admin, db_name, need, MODEL)
            measured = side_by_side(targets, [STREAMS] * rounds, args, streams, streams)
            parley_rounds, peer_rounds = measured["parley"], measured["lean peer"]
            if parley_rounds[-1]["unfinished"]:
                stuck = asyncio.run(_diagnose(db_url, server.pid))
                print(
                    f"      after the round: {stuck['running']} runs still RUNNING; server CPU over 1 s: "
                    f"{stuck['server_cpu_1s']:.2f} s; database connections idle in transaction: "
                    f"{stuck['idle_in_tx']} (most common last statement: {stuck['idle_in_tx_query']!r}), "
                    f"waiting on a lock: {stuck['lock_waits']}",
                    flush=True,
                )
        with RawServer() as raw:
            raw_count = 1 if args.quick else RAW_ROUNDS
            fake = [f"raw-{i}" for i in range(WARMUP_STREAMS + STREAMS * raw_count)]
            target = Target("raw", f"ws://127.0.0.1:{raw.port}/graphql", "x", raw.pid, None)
            raw_rounds = side_by_side([(target, fake)], [STREAMS] * raw_count, args, streams, streams)["raw"]

    p = median_round(parley_rounds)
    lp = median_round(peer_rounds)
    r = median_round(raw_rounds)
    lat = [x for rr in parley_rounds for x in rr["newest"]]
    worst = [x for rr in parley_rounds for x in rr["oldest"]]
    peer_worst = [x for rr in peer_rounds for x in rr["oldest"]]
    raw_lat = [x for rr in raw_rounds for x in rr["newest"]]
    ended, total, complete = completion(parley_rounds)
    report.figure("Parley streams ended with index 200", f"{ended}/{total}", "all", complete)
    ended, total, complete = completion(peer_rounds)
    report.figure("lean peer streams ended with index 200", f"{ended}/{total}", "all", complete)
    report.figure("Parley delivered model deltas/s", f"{p['rate']:,.0f}")
    report.figure("lean peer delivered model deltas/s", f"{lp['rate']:,.0f}")
    report.figure("raw Starlette WebSocket deltas/s", f"{r['rate']:,.0f}")
    ratio = p["rate"] / lp["rate"]
    report.figure(
        "Parley / lean peer", f"{ratio:.3f}", f">= {TARGET_PEER_RATIO:g}", ratio >= TARGET_PEER_RATIO
    )
    ratio = p["rate"] / r["rate"]
    report.figure("Parley / raw", f"{ratio:.3f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO)
    report.figure("lean peer / raw", f"{lp['rate'] / r['rate']:.3f}")
    report.figure(
        "server CPU per model delta, Parley / peer (µs)",
        f"{cpu_per_delta(parley_rounds)} / {cpu_per_delta(peer_rounds)}",
    )
    report.figure(
        "TextDelta events per 200 model deltas", f"{DELTAS * p['delta_events'] / max(1, p['deltas']):.1f}"
    )
    p99 = 1000 * h.percentile(lat, 99)
    report.figure("added latency p50, newest stamp (ms)", f"{1000 * h.percentile(lat, 50):.1f}")
    report.figure(
        "added latency p99, newest stamp (ms)", f"{p99:.1f}", f"<= {TARGET_P99_MS:g}", p99 <= TARGET_P99_MS
    )
    report.figure("added latency p50, oldest stamp (ms)", f"{1000 * h.percentile(worst, 50):.1f}")
    report.figure("added latency p99, oldest stamp = worst (ms)", f"{1000 * h.percentile(worst, 99):.1f}")
    report.figure(
        "lean peer added latency p50 / p99 (ms)",
        f"{1000 * h.percentile(peer_worst, 50):.1f} / {1000 * h.percentile(peer_worst, 99):.1f}",
    )
    report.figure(
        "raw send->receipt p50 / p99 (ms)",
        f"{1000 * h.percentile(raw_lat, 50):.1f} / {1000 * h.percentile(raw_lat, 99):.1f}",
    )
    if stuck:
        report.figure("runs left RUNNING after the round", str(stuck["running"]), "0", stuck["running"] == 0)
    return report


def cpu_per_delta(rounds: list[dict[str, Any]]) -> str:
    """Server CPU per delivered model delta (µs): less sensitive to other work than deltas/s."""
    return f"{1e6 * sum(r['server_cpu_s'] for r in rounds) / max(1, sum(r['deltas'] for r in rounds)):.0f}"


def completion(rounds: list[dict[str, Any]]) -> tuple[int, int, bool]:
    """Streams that ended, streams started, and whether every one delivered all its deltas cleanly."""
    ended = sum(len(r["final_index"]) - r["unfinished"] for r in rounds)
    total = sum(len(r["final_index"]) for r in rounds)
    complete = all(
        r["final_index"] == [DELTAS] * len(r["final_index"]) and not r["unfinished"] and not r["errors"]
        for r in rounds
    )
    return ended, total, complete


def add_options(parser: argparse.ArgumentParser, rounds_help: str) -> None:
    """The options of the streaming benches (this file and paced.py)."""
    parser.add_argument("--rounds", type=int, default=1, help=rounds_help)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds a round may take")
    parser.add_argument(
        "--extra-plugin", action="append", default=[], help="(experiments) another PARLEY_PLUGINS module"
    )
    parser.add_argument(
        "--extra-path",
        action="append",
        default=[],
        help="(experiments) a directory for the server's PYTHONPATH",
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--raw-server":
        serve_raw(int(sys.argv[2]))
        return
    parser = h.base_args(__doc__.splitlines()[0])
    add_options(parser, "measured rounds on Parley and the lean peer (median reported)")
    h.main_wrapper(run, parser.parse_args())


if __name__ == "__main__":
    main()
