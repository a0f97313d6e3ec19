"""Memory of idle subscriptions: the server's RSS growth per open ``sessionEvents`` subscription.

One ``parley serve`` process (1 worker) on a fresh database, 50 sessions. Two layouts, each on a
fresh server process (RSS never shrinks back, so they must not share one):

1. 1,000 WebSocket connections with one subscription each (the headline: a browser tab per
   watcher, so per-connection costs count);
2. 50 connections with 20 subscriptions each (the server's cap per connection), for comparison.

Before: one connection with one subscription (warming the code paths), then VmRSS from
/proc/<pid>/status once the server's CPU time stops moving. After: all subscriptions open, the same
settle, VmRSS again. Growth / subscriptions is the figure. Then every subscription proves it is
live: one run per session (default ``echo`` agent) and each subscription must see RunFinished.

    python bench/idle_subscriptions.py [--quick] [--strict]

Target: <= 50 KB per subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _harness as h

sys.path.insert(0, str(h.REPO))
from tests.wsclient import WATCH  # the subscription document the tests use

SUBSCRIPTIONS = 1000
SESSIONS = 50
PER_CONNECTION = 20  # the server's max_subscriptions_per_connection
TARGET_KB = 50.0
CONNECT_CONCURRENCY = 50
SETTLE_MAX_S = 15.0
LIVE_TIMEOUT_S = 60.0
SEND = "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id status } } }"


def raise_nofile(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return f"RLIMIT_NOFILE {soft} (server processes inherit it)"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def settle(pid: int) -> float:
    """Wait until the server's CPU time stops moving (0.5 s windows); the seconds waited."""
    t0 = time.monotonic()
    last = h.cpu_seconds(pid)
    while time.monotonic() - t0 < SETTLE_MAX_S:
        await asyncio.sleep(0.5)
        now = h.cpu_seconds(pid)
        if now - last < 0.02:
            break
        last = now
    return time.monotonic() - t0


class Conn:
    """One graphql-transport-ws connection holding several sessionEvents subscriptions."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.finished: Counter[str] = Counter()  # op id -> RunFinished seen
        self.errors: list[str] = []
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, token: str) -> Conn:
        import websockets

        ws = await websockets.connect(
            url, subprotocols=["graphql-transport-ws"], max_size=None, open_timeout=60
        )
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        ack = json.loads(await ws.recv())
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        conn = cls(ws)
        conn.reader = asyncio.create_task(conn._read())
        return conn

    async def subscribe(self, op_id: str, session_id: str) -> None:
        await self.ws.send(
            json.dumps(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": WATCH, "variables": {"s": session_id}},
                }
            )
        )

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg["type"] == "ping":
                    await self.ws.send('{"type":"pong"}')
                elif msg["type"] != "next" or msg["payload"].get("errors"):
                    self.errors.append(str(msg)[:300])
                elif msg["payload"]["data"]["sessionEvents"]["__typename"] == "RunFinished":
                    self.finished[msg["id"]] += 1

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)


async def layout(
    server: h.Server, token: str, sessions: list[str], connections: int, per_connection: int
) -> dict[str, Any]:
    url = server.url.replace("http://", "ws://") + "/graphql"
    warm = await Conn.open(url, token)
    await warm.subscribe("warm", sessions[0])
    await settle(server.pid)
    before = rss_kb(server.pid)

    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    ops: list[tuple[int, str]] = []  # (connection index, op id)

    async def one(i: int) -> Conn:
        async with sem:
            conn = await Conn.open(url, token)
            for j in range(per_connection):
                k = i * per_connection + j
                await conn.subscribe(f"s{k}", sessions[k % len(sessions)])
                ops.append((i, f"s{k}"))
            return conn

    t0 = time.perf_counter()
    conns = await asyncio.gather(*(one(i) for i in range(connections)))
    opened = time.perf_counter() - t0
    waited = await settle(server.pid)
    after = rss_kb(server.pid)

    # Every subscription must be live: one run per session, each subscription sees it finish.
    async with h.Client(server.url, token, connections=16) as client:
        await asyncio.gather(*(client.gql(SEND, s=s, c="ping") for s in sessions))
    deadline = time.monotonic() + LIVE_TIMEOUT_S
    live = 0
    while time.monotonic() < deadline:
        live = sum(1 for i, op in ops if conns[i].finished[op] >= 1)
        if live == len(ops):
            break
        await asyncio.sleep(0.2)
    errors = [e for c in conns for e in c.errors]
    for c in [*conns, warm]:
        await c.close()
    return {
        "before": before,
        "after": after,
        "subs": len(ops),
        "live": live,
        "opened_s": opened,
        "settle_s": waited,
        "errors": errors,
    }


async def make_sessions(url: str, token: str) -> list[str]:
    async with h.Client(url, token) as client:
        return [await h.create_session(client, f"idle {i}") for i in range(SESSIONS)]


def run(args: Any) -> h.Report:
    loop_name = h.install_uvloop()
    report = h.Report()
    limit = raise_nofile(2 * SUBSCRIPTIONS + 500)
    print(
        f"idle_subscriptions: {SUBSCRIPTIONS} idle sessionEvents subscriptions over {SESSIONS} sessions, "
        f"1 worker; client {loop_name}; {limit}",
        flush=True,
    )
    layouts = [("1 subscription per connection", SUBSCRIPTIONS, 1)]
    if not args.quick:
        layouts.append(
            (
                f"{PER_CONNECTION} subscriptions per connection",
                SUBSCRIPTIONS // PER_CONNECTION,
                PER_CONNECTION,
            )
        )
    with h.bench_database("idle") as db_url:
        token = h.setup_database(db_url)
        sessions: list[str] = []
        for label, connections, per in layouts:
            with h.Server(db_url, workers=1, PARLEY_LOG_LEVEL="warning") as server:
                if not sessions:
                    sessions = asyncio.run(make_sessions(server.url, token))
                r = asyncio.run(layout(server, token, sessions, connections, per))
            growth = (r["after"] - r["before"]) / r["subs"]
            print(
                f"  {label}: {connections} connections, {r['subs']} subscriptions opened in {r['opened_s']:.1f} s; "
                f"VmRSS {r['before'] / 1024:.1f} MB -> {r['after'] / 1024:.1f} MB (settled {r['settle_s']:.1f} s)"
                + (f"; errors: {r['errors'][:2]}" if r["errors"] else ""),
                flush=True,
            )
            report.figure(
                f"live subscriptions ({connections} conn x {per})",
                f"{r['live']}/{r['subs']}",
                "all",
                r["live"] == r["subs"],
            )
            report.figure(
                f"RSS growth per subscription, {connections} conn x {per} (KB)",
                f"{growth:.1f}",
                f"<= {TARGET_KB:g}",
                growth <= TARGET_KB,
            )
    return report


def main() -> None:
    h.main_wrapper(run, h.base_args(__doc__.splitlines()[0]).parse_args())


if __name__ == "__main__":
    main()
