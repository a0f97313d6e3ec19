"""Stats and search: latency over HTTP and SQL statements per request.

One user with 1,000 sessions x 50 messages (plus 10 runs per session, a tenth of them failed),
seeded by bulk COPY on a fresh database (created on the local server, dropped at the end).
The app runs under an in-process ``uvicorn.Server`` on a free port; httpx times, one request
at a time:

* ``stats(days: 30)``
* ``sessions(first: 50) { edges { node { stats { ... } } } }``
* ``searchMessages(query: <a word in ~1% of messages>, first: 20)`` (and, for information,
  a word present in ~20% of messages)

SQL statements are counted in-process by wrapping asyncpg's ``Connection`` query methods
(BEGIN/COMMIT included; a pool reset query on release, if any, is not counted). The count is
shown for ``sessions(first: 5)`` and ``sessions(first: 50)`` to show it does not grow.

    python bench/stats.py [--quick] [--strict]

Targets: each p50 <= 50 ms; statements for first: 5 == statements for first: 50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERVER_URL = os.environ.get("PARLEY_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
SESSIONS = 1000
MESSAGES = 50
RUNS = 10
TARGET_P50_MS = 50.0
# A word in ~1% of messages (the search timed against the target) and one in ~20% (info).
RARE_WORD, RARE_SHARE = "lighthouse", 0.01
COMMON_WORD, COMMON_SHARE = "parley", 0.20

STATS_FIELDS = """messageCount userMessages assistantMessages toolCalls errors inputTokens
  outputTokens totalCost averageResponseTimeMs firstMessageAt lastActivityAt"""
Q_USAGE = """{ stats(days: 30) { periodDays sessions newSessions activeSessions messages userMessages
  assistantMessages errors inputTokens outputTokens totalCost lastActivityAt } }"""
Q_SESSIONS = (
    f"query($n: Int!) {{ sessions(first: $n) {{ edges {{ node {{ id stats {{ {STATS_FIELDS} }} }} }} }} }}"
)
Q_SEARCH = """query($q: String!) { searchMessages(query: $q, first: 20) {
  rank snippet message { id sequence role } session { id title } } }"""


# --- statement counting ------------------------------------------------------------------------

_statements: list[str] = []
_counting = False


def _install_counter() -> None:
    reset_query = None

    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval", "fetchmany"):
        original = getattr(asyncpg.Connection, name)

        def wrapper(
            self: Any, query: str, *args: Any, __original: Callable[..., Any] = original, **kw: Any
        ) -> Any:
            nonlocal reset_query
            if _counting:
                if reset_query is None:
                    reset_query = self.get_reset_query()
                if query != reset_query:
                    _statements.append(query)
            return __original(self, query, *args, **kw)

        setattr(asyncpg.Connection, name, wrapper)


def _url_with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _pg(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- seeding -----------------------------------------------------------------------------------


def _vocabulary(n: int = 1000) -> list[str]:
    rng = random.Random(7)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "da", "fo", "gu", "hi"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


async def seed(url: str, user_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    rng = random.Random(42)
    vocab = _vocabulary()
    now = datetime.now(UTC)
    sessions, messages, runs = [], [], []
    for i in range(SESSIONS):
        sid = uuid.uuid4()
        start = now - timedelta(days=25 * rng.random(), minutes=60)
        times = [start + timedelta(seconds=20 * k) for k in range(MESSAGES)]
        sessions.append(
            (
                sid,
                user_id,
                agent_id,
                f"bench session {i}",
                "{}",
                0,
                "{}",
                i % 3 != 0,
                MESSAGES,
                MESSAGES,
                start,
                times[-1],
                times[-1],
            )
        )
        for k in range(MESSAGES):
            words = [rng.choice(vocab) for _ in range(12)]
            if rng.random() < RARE_SHARE:
                words[rng.randrange(12)] = RARE_WORD
            if rng.random() < COMMON_SHARE:
                words[rng.randrange(12)] = COMMON_WORD
            text = " ".join(words)
            phase = k % 5  # user, assistant calling a tool, tool, assistant, user ...
            role = ("user", "assistant", "tool", "assistant", "user")[phase]
            tool_calls = "[]"
            call_id = tool_name = model = None
            usage: tuple[Any, ...] = (None, None, None, None)
            if phase == 1:
                tool_calls = json.dumps([{"id": f"c{k}", "name": "lookup", "arguments": {"q": words[0]}}])
                text = ""
            if phase == 2:
                call_id, tool_name = f"c{k - 1}", "lookup"
            if role == "assistant":
                model = "echo"
                usage = (1, rng.randint(50, 500), rng.randint(10, 200), rng.random() / 1000)
            kind = "response" if role == "assistant" else "request"
            model_message = json.dumps({"kind": kind, "parts": [{"content": text}]})
            messages.append(
                (
                    uuid.uuid4(),
                    sid,
                    k + 1,
                    role,
                    text,
                    tool_calls,
                    call_id,
                    tool_name,
                    model,
                    *usage,
                    "{}",
                    model_message,
                    times[k],
                )
            )
        for r in range(RUNS):
            began = times[min(MESSAGES - 1, r * 5)]
            failed = rng.random() < 0.1
            runs.append(
                (
                    uuid.uuid4(),
                    sid,
                    "failed" if failed else "completed",
                    "echo",
                    0,
                    began,
                    began + timedelta(milliseconds=rng.randint(100, 3000)),
                    "",
                    0,
                    "X" if failed else None,
                )
            )
    conn = await asyncpg.connect(_pg(url))
    try:
        await conn.copy_records_to_table(
            "sessions",
            records=sessions,
            columns=[
                "id",
                "user_id",
                "agent_id",
                "title",
                "state",
                "state_version",
                "metadata",
                "is_active",
                "last_sequence",
                "message_count",
                "created_at",
                "updated_at",
                "last_activity_at",
            ],
        )
        await conn.copy_records_to_table(
            "messages",
            records=messages,
            columns=[
                "id",
                "session_id",
                "sequence",
                "role",
                "content",
                "tool_calls",
                "tool_call_id",
                "tool_name",
                "model",
                "requests",
                "input_tokens",
                "output_tokens",
                "cost",
                "metadata",
                "model_message",
                "created_at",
            ],
        )
        await conn.copy_records_to_table(
            "runs",
            records=runs,
            columns=[
                "id",
                "session_id",
                "status",
                "model",
                "owner_key",
                "started_at",
                "finished_at",
                "partial_text",
                "partial_index",
                "error_code",
            ],
        )
        # What autovacuum would have done by now on a live database.
        await conn.execute("VACUUM ANALYZE sessions, messages, runs")
    finally:
        await conn.close()


# --- timing ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


async def gql(client: httpx.AsyncClient, query: str, **variables: Any) -> Any:
    resp = await client.post("/graphql", json={"query": query, "variables": variables})
    body = resp.json()
    if resp.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL error: {resp.status_code} {body}")
    return body["data"]


async def timed(client: httpx.AsyncClient, repeat: int, query: str, **variables: Any) -> list[float]:
    for _ in range(5):  # warm: prepared statements, plans, caches
        await gql(client, query, **variables)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await gql(client, query, **variables)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def statements_for(client: httpx.AsyncClient, query: str, **variables: Any) -> list[str]:
    global _counting
    await gql(client, query, **variables)
    await asyncio.sleep(0.05)
    _statements.clear()
    _counting = True
    try:
        await gql(client, query, **variables)
    finally:
        _counting = False
    return list(_statements)


# --- main --------------------------------------------------------------------------------------


async def bench(url: str, iterations: int, strict: bool) -> int:
    import uvicorn

    from models import Agent
    from services import database, users
    from services.settings import Settings
    from web.app import create_app

    await database.migrate(url)
    settings = Settings(database_url=url, model="echo", graphiql=False, log_level="warning")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the server stopped before starting")
            await asyncio.sleep(0.02)
        user, token = await users.create_user(f"bench-{secrets.token_hex(3)}")
        agent = await Agent.get(name="assistant")
        t0 = time.perf_counter()
        await seed(url, user.id, agent.id)
        print(
            f"seeded {SESSIONS} sessions x {MESSAGES} messages (+{SESSIONS * RUNS} runs) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        missed = 0
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            usage = (await gql(client, Q_USAGE))["stats"]
            print(
                f"stats(days: 30): sessions={usage['sessions']} messages={usage['messages']} "
                f"errors={usage['errors']} inputTokens={usage['inputTokens']}"
            )
            page = (await gql(client, Q_SESSIONS, n=50))["sessions"]["edges"]
            assert len(page) == 50 and all(e["node"]["stats"]["messageCount"] == MESSAGES for e in page)
            hits = {
                w: len((await gql(client, Q_SEARCH, q=w))["searchMessages"]) for w in (RARE_WORD, COMMON_WORD)
            }
            assert all(n == 20 for n in hits.values()), hits

            print(
                f"\n{'request':<44} {'p50 ms':>8} {'p99 ms':>8} {'stmts':>6}  target p50 <= {TARGET_P50_MS:.0f} ms"
            )
            cases: list[tuple[str, str, dict[str, Any], bool]] = [
                ("stats(days: 30)", Q_USAGE, {}, True),
                ("sessions(first: 50) { stats }", Q_SESSIONS, {"n": 50}, True),
                (f"searchMessages({RARE_WORD!r}, ~1% of messages)", Q_SEARCH, {"q": RARE_WORD}, True),
                (f"searchMessages({COMMON_WORD!r}, ~20%) [info]", Q_SEARCH, {"q": COMMON_WORD}, False),
            ]
            for label, query, variables, graded in cases:
                lat = await timed(client, iterations, query, **variables)
                stmts = await statements_for(client, query, **variables)
                p50, p99 = statistics.median(lat), percentile(lat, 99)
                verdict = ("PASS" if p50 <= TARGET_P50_MS else "MISS") if graded else ""
                missed += verdict == "MISS"
                print(f"{label:<44} {p50:>8.1f} {p99:>8.1f} {len(stmts):>6}  {verdict}")

            print("\nSQL statements per request (in-process count, BEGIN/COMMIT included):")
            counts = {}
            for n in (5, 50):
                stmts = await statements_for(client, Q_SESSIONS, n=n)
                counts[n] = len(stmts)
                print(f"  sessions(first: {n:>2}) {{ stats }}: {len(stmts)} statements")
                for s in stmts:
                    print("      " + " ".join(s.split())[:100])
            same = counts[5] == counts[50]
            missed += not same
            print(f"  constant in the number of sessions: {'PASS' if same else 'MISS'}")
        return 1 if (strict and missed) else 0
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_pg(SERVER_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed requests")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-db", action="store_true", help="keep the database (prints its name)")
    args = parser.parse_args()
    name = f"parley_bench_stats_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = _url_with_db(SERVER_URL, name)
    os.environ["DATABASE_URL"] = url  # for anything that reads the settings itself
    os.environ.setdefault("PARLEY_MODEL", "echo")
    _install_counter()
    try:
        return asyncio.run(bench(url, 30 if args.quick else 200, args.strict))
    finally:
        if args.keep_db:
            print(f"kept database {name}")
        else:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.exit(main())
