"""A page of sessions with their nested fields costs the same number of SQL statements for 2 or 10."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from tests.conftest import Api, MakeApi
from tests.helpers import add_messages, assistant, create_session, user

QUERY = """
query($n: Int!) {
  sessions(first: $n) {
    edges { node {
      agent { name }
      messageCount
      messages(last: 20) { totalCount edges { node { content } } }
      memory { key }
      activeRun { id }
    } }
    totalCount
  }
}
"""

_log: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sql_log", default=None)

# Every way a statement reaches PostgreSQL through asyncpg (Tortoise's client and Parley's raw
# SQL both end here; pooled connections forward to these methods).
_METHODS = (
    "fetch",
    "fetchrow",
    "fetchval",
    "execute",
    "executemany",
    "prepare",
    "cursor",
    "copy_records_to_table",
)


class Recording:
    """`with Recording() as log:` the statements sent meanwhile (once `statements` patched asyncpg)."""

    def __enter__(self) -> list[str]:
        self.log: list[str] = []
        self.token = _log.set(self.log)
        return self.log

    def __exit__(self, *exc: object) -> None:
        _log.reset(self.token)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Recording]]:
    """`with statements() as log:` records the SQL sent by this task and the tasks it starts."""
    for name in _METHODS:
        original = getattr(asyncpg.connection.Connection, name)

        def wrapper(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            log = _log.get()
            if log is not None:
                log.append(str(args[0]) if args else "")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(asyncpg.connection.Connection, name, wrapper)

    yield Recording


async def _fill(api: Api, n: int) -> None:
    for i in range(n):
        s = await create_session(api, title=f"s{i}")
        await add_messages(api, s["id"], user(f"question {i}"), assistant(f"answer {i}"))
        await api.gql(
            'mutation($sid: UUID!) { saveMemory(key: "k", value: 1, scope: SESSION, sessionId: $sid) { key } }',
            {"sid": s["id"]},
        )


async def _count(api: Api, n: int, statements: type[Recording]) -> tuple[int, dict[str, Any]]:
    with statements() as log:
        data = await api.gql(QUERY, {"n": n})
    return len(log), data


async def test_statement_count_does_not_grow_with_the_page(
    make_api: MakeApi, statements: type[Recording]
) -> None:
    small, large = await make_api(), await make_api()
    await _fill(small, 2)
    await _fill(large, 10)

    # The counter sees real statements: a new token's first query costs its lookup; the
    # process remembers the token afterwards, so the next costs none.
    fresh = await make_api()
    with statements() as log:
        await fresh.gql("{ viewer { name } }")
    assert 1 <= len(log) <= 2, log
    with statements() as log:
        await fresh.gql("{ viewer { name } }")
    assert log == [], log

    count_small, data_small = await _count(small, 2, statements)
    count_large, data_large = await _count(large, 10, statements)
    with statements() as log_large:
        await large.gql(QUERY, {"n": 10})

    assert len(data_small["sessions"]["edges"]) == 2 and len(data_large["sessions"]["edges"]) == 10
    for data in (data_small, data_large):
        for edge in data["sessions"]["edges"]:
            node = edge["node"]
            assert node["agent"] == {"name": "assistant"} and node["messageCount"] == 2
            assert node["messages"]["totalCount"] == 2 and len(node["messages"]["edges"]) == 2
            assert node["memory"] == [{"key": "k"}] and node["activeRun"] is None

    assert count_small == count_large, (count_small, count_large)
    # One statement per kind of data (token, count, page, agents, messages, memory, runs), plus
    # the pool's reset of each connection it hands back.
    queries = [q for q in log_large if not q.startswith("SELECT pg_advisory_unlock_all()")]
    assert len(queries) <= 8, "\n".join(q[:150].replace("\n", " ") for q in queries)


async def test_history_of_many_sessions_is_batched(make_api: MakeApi, statements: type[Recording]) -> None:
    small, large = await make_api(), await make_api()
    await _fill(small, 2)
    await _fill(large, 10)
    query = "query($n: Int!) { sessions(first: $n) { edges { node { history } } } }"
    counts = []
    for api, n in ((small, 2), (large, 10)):
        with statements() as log:
            data = await api.gql(query, {"n": n})
        counts.append(len(log))
        assert len(data["sessions"]["edges"]) == n
        assert all(len(e["node"]["history"]) == 2 for e in data["sessions"]["edges"])
    assert counts[0] == counts[1], counts
