"""Cross-process fan-out: watchers on process B, runs on process A, one database.

Two ``parley serve`` processes (1 worker each) on a fresh database. 200 ``sessionEvents``
subscriptions on B (one WebSocket connection each, graphql-transport-ws over ``websockets``),
10 per session over 20 sessions. Runs are started on A with ``sendMessage`` (HTTP), one per
session at a time, with the agent model ``bench:paced`` (bench/stream_models.py: one text delta
every 20 ms, ~1 s for 50 deltas, each delta the token ``t=<time.time()>;`` taken when the model
yields it). A watcher's lag for a received TextDelta = receipt time - the newest emission time
in it (p50/p99); against the oldest it is the worst case for the deltas it merged.

A warm-up run per session first proves every watcher is live (each must see its RunFinished).
NOTIFYs are counted by a LISTEN connection of the bench's own on channel ``parley_events``,
per run id (the ``r`` field of the payload's blocks).

    python bench/fanout.py [--quick] [--strict] [--rounds N]

Target: watcher lag p99 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import _harness as h
import asyncpg

sys.path.insert(0, str(h.REPO))
from tests.wsclient import WATCH  # the subscription document the tests use

SESSIONS = 20
WATCHERS_PER_SESSION = 10
DELTAS = 50
TARGET_P99_MS = 50.0
PLUGINS = "tests.plugins,bench.stream_models"
CHANNEL = "parley_events"
ROUND_TIMEOUT_S = 30.0
TOKEN = re.compile(r"t=([0-9.]+);")
CREATE_AGENT = "mutation($n: String!, $m: String!) { createAgent(input: {name: $n, model: $m}) { name } }"
CREATE_SESSION = "mutation($a: String) { createSession(input: {agentName: $a}) { id } }"
SEND = "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id status } } }"


class Watchers:
    """Every sessionEvents subscription's received events, keyed by run id."""

    def __init__(self) -> None:
        self.newest: dict[str, list[float]] = defaultdict(list)  # run id -> lags (s)
        self.oldest: dict[str, list[float]] = defaultdict(list)
        self.delta_events: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()  # run id -> watchers that saw RunFinished
        self.final_index: dict[tuple[int, str], int] = {}
        self.snapshots = 0
        self.messages = 0  # every `next` received, all event types
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    async def watch(self, k: int, url: str, token: str, session_id: str, subscribed: asyncio.Event) -> None:
        import websockets

        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], max_size=None, open_timeout=30
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
            )
            ack = json.loads(await ws.recv())
            if ack["type"] != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await ws.send(
                json.dumps(
                    {
                        "id": "w",
                        "type": "subscribe",
                        "payload": {"query": WATCH, "variables": {"s": session_id}},
                    }
                )
            )
            subscribed.set()
            while True:
                raw = await ws.recv()
                now = time.time()
                msg = json.loads(raw)
                kind = msg["type"]
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                    continue
                if kind != "next" or msg["payload"].get("errors"):
                    self.errors.append(str(msg)[:300])
                    return
                self.messages += 1
                event = msg["payload"]["data"]["sessionEvents"]
                typename = event["__typename"]
                if typename == "TextDelta":
                    run_id = event["runId"]
                    ts = [float(x) for x in TOKEN.findall(event["delta"])]
                    if ts:
                        self.newest[run_id].append(now - max(ts))
                        self.oldest[run_id].append(now - min(ts))
                    self.delta_events[run_id] += 1
                    self.final_index[(k, run_id)] = event["index"]
                elif typename == "TextSnapshot":
                    self.snapshots += 1
                    self.final_index[(k, event["runId"])] = event["index"]
                elif typename == "RunFinished":
                    self.finished[event["run"]["id"]] += 1
                    self.changed.set()

    async def wait_finished(self, run_ids: list[str], watchers_each: int, limit_s: float) -> bool:
        deadline = time.monotonic() + limit_s
        while not all(self.finished[r] >= watchers_each for r in run_ids):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


class NotifyCounter:
    """Counts notifications per run; for inline text, the lag from emission to this listener."""

    def __init__(self) -> None:
        self.per_run: Counter[str] = Counter()
        self.lag: dict[str, list[float]] = defaultdict(list)
        self.total = 0

    def __call__(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        now = time.time()
        self.total += 1
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(payload)
            # One notification packs blocks of several runs: {"o": owner, "b": [{"r", "e"}, ...]}.
            # A run counts each notification that carries any of its events once.
            for run_id in {block["r"] for block in data["b"]}:
                self.per_run[run_id] += 1
            for block in data["b"]:
                for item in block["e"]:
                    if item.get("t") == "td":
                        ts = [float(x) for x in TOKEN.findall(item.get("d", ""))]
                        if ts:
                            self.lag[block["r"]].append(now - max(ts))


async def start_runs(client: h.Client, sessions: list[str], content: str) -> tuple[list[str], list[str]]:
    """One sendMessage per session, all at once; the run ids (and errors) once they returned."""

    async def one(sid: str) -> str:
        data = await client.gql(SEND, s=sid, c=content)
        return str(data["sendMessage"]["run"]["id"])

    results = await asyncio.gather(
        *(asyncio.wait_for(one(s), ROUND_TIMEOUT_S) for s in sessions), return_exceptions=True
    )
    ids = [r for r in results if isinstance(r, str)]
    errors = [repr(r)[:200] for r in results if not isinstance(r, str)]
    return ids, errors


def cpu_sample(a: h.Server, b: h.Server, db_name: str) -> tuple[float, ...]:
    postgres = sum(h.cpu_seconds(p) for p in h.backend_pids(db_name))
    return (
        h.cpu_seconds(a.pid),
        h.cpu_seconds(b.pid),
        time.process_time(),
        postgres,
        h.machine_busy_seconds(),
    )


async def run_durations(db_url: str, run_ids: list[str]) -> list[float]:
    async with h.db_conn(db_url) as conn:
        rows = await conn.fetch(
            "SELECT extract(epoch FROM finished_at - started_at) AS d FROM runs WHERE id = ANY($1::uuid[])",
            run_ids,
        )
    return [float(r["d"]) for r in rows if r["d"] is not None]


async def scenario(args: Any, db_url: str, a: h.Server, b: h.Server, admin: str) -> h.Report:
    report = h.Report()
    rounds = 1 if args.quick else args.rounds
    async with h.Client(a.url, admin, connections=SESSIONS + 4) as client:
        await client.gql(CREATE_AGENT, n="paced", m="bench:paced")
        sessions = [
            str((await client.gql(CREATE_SESSION, a="paced"))["createSession"]["id"]) for _ in range(SESSIONS)
        ]

        listener = await asyncpg.connect(h.asyncpg_url(db_url))
        counter = NotifyCounter()
        await listener.add_listener(CHANNEL, counter)
        watchers = Watchers()
        ws_url = b.url.replace("http://", "ws://") + "/graphql"
        subscribed = [asyncio.Event() for _ in range(SESSIONS * WATCHERS_PER_SESSION)]
        tasks = [
            asyncio.create_task(
                watchers.watch(k, ws_url, admin, sessions[k // WATCHERS_PER_SESSION], subscribed[k])
            )
            for k in range(SESSIONS * WATCHERS_PER_SESSION)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed)), 60)
            await asyncio.sleep(0.5)  # the last subscriptions reach B's hub
            # Warm-up: every watcher must see its session's run finish.
            warm_ids, errors = await start_runs(client, sessions, "warm up 5")
            live = await watchers.wait_finished(warm_ids, WATCHERS_PER_SESSION, ROUND_TIMEOUT_S)
            seen = sum(min(watchers.finished[r], WATCHERS_PER_SESSION) for r in warm_ids)
            print(
                f"  warm-up: {len(warm_ids)}/{SESSIONS} runs, watchers saw {seen}/{len(subscribed)} RunFinished",
                flush=True,
            )
            if not live or errors:
                raise RuntimeError(f"warm-up incomplete: errors {errors[:3]} {watchers.errors[:3]}")

            measured: list[str] = []
            notifies0 = counter.total
            messages0 = watchers.messages
            db_name = db_url.rsplit("/", 1)[-1]
            cpu0 = cpu_sample(a, b, db_name)
            t0 = time.perf_counter()
            all_ok = True
            for i in range(rounds):
                ids, errors = await start_runs(client, sessions, f"go {DELTAS}")
                measured += ids
                ok = await watchers.wait_finished(ids, WATCHERS_PER_SESSION, ROUND_TIMEOUT_S)
                print(
                    f"  round {i + 1}: {len(ids)}/{SESSIONS} runs returned, "
                    f"{sum(min(watchers.finished[r], WATCHERS_PER_SESSION) for r in ids)}/{SESSIONS * WATCHERS_PER_SESSION}"
                    f" RunFinished seen{'' if not errors else f'; errors: {errors[:2]}'}",
                    flush=True,
                )
                if not ok or errors:
                    all_ok = False
                    break
            wall = time.perf_counter() - t0
            cpu1 = cpu_sample(a, b, db_name)
            await asyncio.sleep(0.2)  # late notifications of the last runs
            sent = counter.total - notifies0
            delivered = watchers.messages - messages0
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await listener.close()

    used = [(y - x) / wall for x, y in zip(cpu0, cpu1, strict=True)]
    others = max(0.0, used[4] - sum(used[:4]))
    print(
        f"  CPU, % of one core ({os.cpu_count()} cores): A {100 * used[0]:.0f}%, B {100 * used[1]:.0f}%, "
        f"bench {100 * used[2]:.0f}%, postgres (this database) {100 * used[3]:.0f}%, others {100 * others:.0f}%"
        + ("  <- other work competed for the CPU" if others > 0.25 else ""),
        flush=True,
    )
    b_cpu = used[1] * wall
    print(
        f"  B delivered {delivered} events to watchers: {1e6 * b_cpu / max(1, delivered):.0f} us of B's CPU per event",
        flush=True,
    )
    lags = [x for r in measured for x in watchers.newest[r]]
    worst = [x for r in measured for x in watchers.oldest[r]]
    complete = [
        watchers.final_index.get((k, r)) == DELTAS
        for r in measured
        for k in range(SESSIONS * WATCHERS_PER_SESSION)
        if (k, r) in watchers.final_index
    ]
    expected = len(measured) * WATCHERS_PER_SESSION
    report.figure(
        "runs measured",
        f"{len(measured)}",
        f"{rounds * SESSIONS}",
        all_ok and len(measured) == rounds * SESSIONS,
    )
    report.figure(
        "watcher streams with every delta (index 50)",
        f"{sum(complete)}/{expected}",
        "all",
        sum(complete) == expected,
    )
    report.figure(
        "TextDelta events per watcher per run",
        f"{sum(watchers.delta_events[r] for r in measured) / max(1, expected):.1f}",
    )
    report.figure("watcher lag p50, newest stamp (ms)", f"{1000 * h.percentile(lags, 50):.1f}")
    p99 = 1000 * h.percentile(lags, 99)
    report.figure(
        "watcher lag p99, newest stamp (ms)", f"{p99:.1f}", f"<= {TARGET_P99_MS:g}", p99 <= TARGET_P99_MS
    )
    report.figure("watcher lag p99, oldest stamp = worst (ms)", f"{1000 * h.percentile(worst, 99):.1f}")
    report.figure("watcher lag max, newest stamp (ms)", f"{1000 * max(lags, default=float('nan')):.1f}")
    notify_lag = [x for r in measured for x in counter.lag[r]]
    report.figure(
        "  of which emission -> NOTIFY at a listener p50/p99",
        f"{1000 * h.percentile(notify_lag, 50):.1f} / {1000 * h.percentile(notify_lag, 99):.1f}",
    )
    durations = await run_durations(db_url, measured)
    report.figure(
        "run duration p50 / max (s; model alone ~1.0)",
        f"{h.percentile(durations, 50):.2f} / {max(durations, default=float('nan')):.2f}",
    )
    per_run = [counter.per_run[r] for r in measured]
    report.figure("NOTIFYs per run (mean)", f"{sum(per_run) / max(1, len(per_run)):.1f}")
    report.figure("NOTIFYs per run (min / max)", f"{min(per_run, default=0)} / {max(per_run, default=0)}")
    report.figure("NOTIFYs per second (all runs)", f"{sent / wall:,.0f}")
    return report


def run(args: Any) -> h.Report:
    loop_name = h.install_uvloop()
    print(
        f"fanout: 2 server processes, {SESSIONS * WATCHERS_PER_SESSION} sessionEvents watchers on B "
        f"({SESSIONS} sessions x {WATCHERS_PER_SESSION}, one connection each), runs on A "
        f"({DELTAS} deltas every 20 ms); client {loop_name}",
        flush=True,
    )
    with h.bench_database("fanout") as db_url:
        env = h.parley_env(db_url)
        h.run_parley(env, "migrate")
        admin = h.run_parley(env, "user", "create", "benchadmin", "--admin").strip().splitlines()[-1].strip()
        server_env = {
            "PARLEY_PLUGINS": PLUGINS,
            "PYTHONPATH": str(h.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PARLEY_LOG_LEVEL": "warning",
        }
        with h.Server(db_url, **server_env) as a, h.Server(db_url, **server_env) as b:
            return asyncio.run(scenario(args, db_url, a, b, admin))


def main() -> None:
    parser = h.base_args(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one run per session")
    h.main_wrapper(run, parser.parse_args())


if __name__ == "__main__":
    main()
