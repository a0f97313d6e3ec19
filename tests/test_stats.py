"""Session stats, period stats and popular agents: exact figures after scripted turns."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo

from services.database import acquire
from tests.conftest import Api, MakeApi

STATS_FIELDS = """
    messageCount userMessages assistantMessages toolCalls errors
    inputTokens outputTokens totalCost averageResponseTimeMs firstMessageAt lastActivityAt
"""
USAGE_FIELDS = """
    periodDays sessions newSessions activeSessions messages userMessages assistantMessages
    errors inputTokens outputTokens totalCost lastActivityAt
"""


async def sql(query: str, *args: Any) -> list[asyncpg.Record]:
    async with acquire() as conn:
        return await conn.fetch(query, *args)


async def new_session(api: Api, agent_name: str | None = None) -> str:
    data = await api.gql(
        "mutation($a: String) { createSession(input: {agentName: $a}) { id } }", {"a": agent_name}
    )
    sid: str = data["createSession"]["id"]
    return sid


async def add(api: Api, session_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = await api.gql(
        """mutation($s: UUID!, $m: [MessageInput!]!) {
             addMessages(sessionId: $s, messages: $m) { id sequence role createdAt }
           }""",
        {"s": session_id, "m": messages},
    )
    added: list[dict[str, Any]] = data["addMessages"]
    return added


async def set_usage(message_id: str, input_tokens: int, output_tokens: int, cost: float) -> None:
    await sql(
        "UPDATE messages SET input_tokens = $2, output_tokens = $3, cost = $4, requests = 1 WHERE id = $1",
        uuid.UUID(message_id),
        input_tokens,
        output_tokens,
        cost,
    )


async def add_run(
    session_id: str,
    status: str,
    started_ago_s: float,
    duration_ms: float | None,
    error_code: str | None = None,
) -> None:
    """A runs row as the runs service would leave it, with controlled timestamps."""
    await sql(
        """INSERT INTO runs (id, session_id, status, model, owner_key, started_at, finished_at,
                             partial_text, partial_index, error_code)
           VALUES ($1, $2, $3, 'echo', 0, now() - make_interval(secs => $4),
                   now() - make_interval(secs => $4) + make_interval(secs => $5 / 1000.0), '', 0, $6)""",
        uuid.uuid4(),
        uuid.UUID(session_id),
        status,
        started_ago_s,
        duration_ms,
        error_code,
    )


async def age_session(session_id: str, created_days: float, activity_days: float) -> None:
    """Move a session (and its messages and runs) back in time."""
    sid = uuid.UUID(session_id)
    await sql(
        """UPDATE sessions SET created_at = now() - make_interval(days => $2),
                               last_activity_at = now() - make_interval(days => $3)
           WHERE id = $1""",
        sid,
        created_days,
        activity_days,
    )
    await sql(
        "UPDATE messages SET created_at = now() - make_interval(days => $2) WHERE session_id = $1",
        sid,
        activity_days,
    )
    await sql(
        """UPDATE runs SET started_at = started_at - make_interval(days => $2),
                           finished_at = finished_at - make_interval(days => $2)
           WHERE session_id = $1""",
        sid,
        activity_days,
    )


TOOL_TURN: list[dict[str, Any]] = [
    {"role": "SYSTEM", "content": "You are terse."},
    {"role": "USER", "content": "What is the weather in Paris?"},
    {
        "role": "ASSISTANT",
        "content": "",
        "toolCalls": [
            {"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
            {"id": "c2", "name": "get_time", "arguments": {}},
        ],
    },
    {"role": "TOOL", "toolCallId": "c1", "content": "sunny"},
    {"role": "TOOL", "toolCallId": "c2", "content": "noon"},
    {"role": "ASSISTANT", "content": "Sunny in Paris at noon."},
    {"role": "USER", "content": "Thanks, note that."},
    {
        "role": "ASSISTANT",
        "content": "Noting it.",
        "toolCalls": [{"id": "c3", "name": "save_memory", "arguments": {"key": "k"}}],
    },
    {"role": "TOOL", "toolCallId": "c3", "content": "saved"},
]


async def scripted_session(api: Api, agent_name: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Nine messages (1 system, 2 user, 3 assistant with 3 tool calls, 3 tool), usage on the
    assistant rows, and runs: two completed (1.5 s and 0.5 s), one failed, one cancelled."""
    sid = await new_session(api, agent_name)
    rows = await add(api, sid, TOOL_TURN)
    assistant = [r for r in rows if r["role"] == "ASSISTANT"]
    await set_usage(assistant[0]["id"], 10, 5, 0.001)
    await set_usage(assistant[1]["id"], 20, 7, 0.002)
    await set_usage(assistant[2]["id"], 30, 9, 0.0005)
    await add_run(sid, "completed", 60, 1500)
    await add_run(sid, "completed", 50, 500)
    await add_run(sid, "failed", 40, 200, "MODEL_ERROR")
    await add_run(sid, "cancelled", 30, 9000)
    return sid, rows


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


# ---------------------------------------------------------------- Session.stats


async def test_session_stats_exact_figures(api: Api) -> None:
    sid, rows = await scripted_session(api)
    data = await api.gql(
        f"query($id: UUID!) {{ session(id: $id) {{ lastActivityAt stats {{ {STATS_FIELDS} }} }} }}",
        {"id": sid},
    )
    stats = data["session"]["stats"]
    assert stats.pop("totalCost") == pytest.approx(0.0035)
    assert stats.pop("averageResponseTimeMs") == pytest.approx(1000.0, abs=0.01)
    assert parse(stats.pop("firstMessageAt")) == parse(rows[0]["createdAt"])
    assert stats.pop("lastActivityAt") == data["session"]["lastActivityAt"]
    assert stats == {
        "messageCount": 9,
        "userMessages": 2,
        "assistantMessages": 3,
        "toolCalls": 3,
        "errors": 1,
        "inputTokens": 60,
        "outputTokens": 21,
    }


async def test_session_stats_of_empty_session(api: Api) -> None:
    sid = await new_session(api)
    data = await api.gql(
        f"query($id: UUID!) {{ session(id: $id) {{ lastActivityAt stats {{ {STATS_FIELDS} }} }} }}",
        {"id": sid},
    )
    stats = data["session"]["stats"]
    assert stats == {
        "messageCount": 0,
        "userMessages": 0,
        "assistantMessages": 0,
        "toolCalls": 0,
        "errors": 0,
        "inputTokens": 0,
        "outputTokens": 0,
        "totalCost": 0.0,
        "averageResponseTimeMs": None,
        "firstMessageAt": None,
        "lastActivityAt": data["session"]["lastActivityAt"],
    }


async def test_session_stats_after_clearing_history(api: Api) -> None:
    sid, _ = await scripted_session(api)
    await api.gql("mutation($id: UUID!) { clearSessionHistory(id: $id) { id } }", {"id": sid})
    data = await api.gql(
        "query($id: UUID!) { session(id: $id) { stats { messageCount toolCalls errors firstMessageAt } } }",
        {"id": sid},
    )
    # Messages are gone; the runs (and so the failed one) stay with the session.
    assert data["session"]["stats"] == {
        "messageCount": 0,
        "toolCalls": 0,
        "errors": 1,
        "firstMessageAt": None,
    }


# Counting SQL statements issued on behalf of one request: the counter lives in a context
# variable, which the request's tasks (DataLoader batches included) inherit.
_counter: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sql_counter", default=None)


# `data, statements = await count_statements(api, query, variables)`
CountStatements = Callable[..., Awaitable[tuple[dict[str, Any], list[str]]]]


@pytest.fixture
def count_statements(monkeypatch: pytest.MonkeyPatch) -> CountStatements:
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, name)

        def wrapper(self: Any, query: str, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            seen = _counter.get()
            if seen is not None:
                seen.append(query)
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, name, wrapper)

    async def run(
        api: Api, query: str, variables: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        seen: list[str] = []
        token = _counter.set(seen)
        try:
            data = await api.gql(query, variables)
        finally:
            _counter.reset(token)
        return data, seen

    return run


async def test_session_stats_batched_in_one_statement(
    make_api: MakeApi, count_statements: CountStatements
) -> None:
    query = f"""query($n: Int) {{ sessions(first: $n) {{
        edges {{ node {{ id stats {{ {STATS_FIELDS} }} }} }} }} }}"""
    counts = {}
    for n in (2, 7):
        api = await make_api()
        expected = {}
        for i in range(n):
            sid = await new_session(api)
            await add(api, sid, [{"role": "USER", "content": f"hello {i}"}] * (i + 1))
            expected[sid] = i + 1
        data, statements = await count_statements(api, query, {"n": 50})
        got = {e["node"]["id"]: e["node"]["stats"]["messageCount"] for e in data["sessions"]["edges"]}
        assert got == expected
        assert sum("FROM runs r WHERE r.session_id = s.id" in s for s in statements) == 1
        counts[n] = len(statements)
    assert counts[2] == counts[7], counts


async def test_session_stats_of_someone_elses_session_is_unreachable(api: Api, other: Api) -> None:
    sid, _ = await scripted_session(api)
    data = await other.gql("query($id: UUID!) { session(id: $id) { stats { messageCount } } }", {"id": sid})
    assert data == {"session": None}


# ---------------------------------------------------------------- stats(days)


async def test_usage_stats_over_periods(api: Api, other: Api) -> None:
    # s1: new and active now, the scripted turns (9 messages, 1 failed run).
    s1, _ = await scripted_session(api)
    # s2: created 60 days ago, last active 40 days ago; 2 messages and a failed run back then.
    s2 = await new_session(api)
    old = await add(
        api, s2, [{"role": "USER", "content": "old question"}, {"role": "ASSISTANT", "content": "old answer"}]
    )
    await set_usage(old[1]["id"], 100, 50, 0.01)
    await add_run(s2, "failed", 10, 100, "MODEL_ERROR")
    await age_session(s2, created_days=60, activity_days=40)
    # s3: created 45 days ago, active today, switched off (isActive false); 1 user message today.
    s3 = await new_session(api)
    await add(api, s3, [{"role": "USER", "content": "still here?"}])
    await api.gql(
        "mutation($id: UUID!) { updateSession(id: $id, input: {isActive: false}) { id } }", {"id": s3}
    )
    await sql("UPDATE sessions SET created_at = now() - interval '45 days' WHERE id = $1", uuid.UUID(s3))
    # Someone else's activity never counts.
    await scripted_session(other)

    last = await sql(
        "SELECT max(last_activity_at) AS t FROM sessions WHERE id = ANY($1::uuid[])",
        [uuid.UUID(s1), uuid.UUID(s3)],
    )
    data = await api.gql(
        f"{{ month: stats(days: 30) {{ {USAGE_FIELDS} }} quarter: stats(days: 90) {{ {USAGE_FIELDS} }} }}"
    )
    month, quarter = data["month"], data["quarter"]
    assert month.pop("totalCost") == pytest.approx(0.0035)
    assert parse(month.pop("lastActivityAt")) == last[0]["t"]
    assert month == {
        "periodDays": 30,
        "sessions": 2,
        "newSessions": 1,
        "activeSessions": 1,
        "messages": 10,
        "userMessages": 3,
        "assistantMessages": 3,
        "errors": 1,
        "inputTokens": 60,
        "outputTokens": 21,
    }
    assert quarter.pop("totalCost") == pytest.approx(0.0135)
    assert parse(quarter.pop("lastActivityAt")) == last[0]["t"]
    assert quarter == {
        "periodDays": 90,
        "sessions": 3,
        "newSessions": 3,
        "activeSessions": 2,
        "messages": 12,
        "userMessages": 4,
        "assistantMessages": 4,
        "errors": 2,
        "inputTokens": 160,
        "outputTokens": 71,
    }
    # The default period is 30 days.
    default = await api.gql("{ stats { periodDays sessions messages } }")
    assert default == {"stats": {"periodDays": 30, "sessions": 2, "messages": 10}}


async def test_usage_stats_of_a_newcomer(api: Api) -> None:
    data = await api.gql(f"{{ stats(days: 7) {{ {USAGE_FIELDS} }} }}")
    assert data["stats"] == {
        "periodDays": 7,
        "sessions": 0,
        "newSessions": 0,
        "activeSessions": 0,
        "messages": 0,
        "userMessages": 0,
        "assistantMessages": 0,
        "errors": 0,
        "inputTokens": 0,
        "outputTokens": 0,
        "totalCost": 0.0,
        "lastActivityAt": None,
    }


async def test_usage_stats_after_activity_outside_the_period(api: Api) -> None:
    sid = await new_session(api)
    await add(api, sid, [{"role": "USER", "content": "long ago"}])
    await age_session(sid, created_days=20, activity_days=10)
    data = await api.gql(
        "{ week: stats(days: 7) { sessions messages lastActivityAt } "
        "fortnight: stats(days: 14) { sessions newSessions messages lastActivityAt } }"
    )
    assert data["week"] == {"sessions": 0, "messages": 0, "lastActivityAt": None}
    fortnight = data["fortnight"]
    assert parse(fortnight.pop("lastActivityAt")) < datetime.now(UTC) - timedelta(days=9)
    assert fortnight == {"sessions": 1, "newSessions": 0, "messages": 1}


@pytest.mark.parametrize("days", [0, -1, 3651])
async def test_usage_stats_rejects_bad_days(api: Api, days: int) -> None:
    assert await api.code("query($d: Int!) { stats(days: $d) { sessions } }", {"d": days}) == "BAD_USER_INPUT"


# ---------------------------------------------------------------- popularAgents


async def create_agent(admin: Api, name: str) -> None:
    await admin.gql(
        'mutation($n: String!) { createAgent(input: {name: $n, model: "echo"}) { id } }', {"n": name}
    )


def usage_of(rows: list[dict[str, Any]], names: set[str]) -> list[tuple[str, int, int, int]]:
    return [
        (r["agent"]["name"], r["sessions"], r["users"], r["messages"])
        for r in rows
        if r["agent"]["name"] in names
    ]


POPULAR = "query($d: Int, $l: Int) { popularAgents(days: $d, limit: $l) { agent { name model } sessions users messages } }"


async def test_popular_agents_own_and_admin(make_api: MakeApi, admin: Api) -> None:
    alpha, beta = f"alpha-{uuid.uuid4().hex[:6]}", f"beta-{uuid.uuid4().hex[:6]}"
    await create_agent(admin, alpha)
    await create_agent(admin, beta)
    a, b = await make_api(), await make_api()
    # a: two sessions on alpha (3 + 2 messages), one on beta (1), one old one on beta (2 messages, 40 days ago).
    s = await new_session(a, alpha)
    await add(
        a,
        s,
        [
            {"role": "USER", "content": "one"},
            {"role": "ASSISTANT", "content": "two"},
            {"role": "USER", "content": "three"},
        ],
    )
    s = await new_session(a, alpha)
    await add(a, s, [{"role": "USER", "content": "four"}, {"role": "ASSISTANT", "content": "five"}])
    s = await new_session(a, beta)
    await add(a, s, [{"role": "USER", "content": "six"}])
    s = await new_session(a, beta)
    await add(a, s, [{"role": "USER", "content": "old"}, {"role": "ASSISTANT", "content": "older"}])
    await age_session(s, created_days=50, activity_days=40)
    # b: one session on beta with 6 messages.
    s = await new_session(b, beta)
    await add(b, s, [{"role": "USER", "content": f"b{i}"} for i in range(6)])

    own = (await a.gql(POPULAR, {"d": 30, "l": 10}))["popularAgents"]
    assert [
        (r["agent"]["name"], r["agent"]["model"], r["sessions"], r["users"], r["messages"]) for r in own
    ] == [
        (alpha, "echo", 2, 1, 5),
        (beta, "echo", 1, 1, 1),
    ]
    own90 = (await a.gql(POPULAR, {"d": 90, "l": 10}))["popularAgents"]
    assert usage_of(own90, {alpha, beta}) == [(alpha, 2, 1, 5), (beta, 2, 1, 3)]
    assert usage_of((await a.gql(POPULAR, {"d": 30, "l": 1}))["popularAgents"], {alpha, beta}) == [
        (alpha, 2, 1, 5)
    ]

    everyone = (await admin.gql(POPULAR, {"d": 30, "l": 100}))["popularAgents"]
    assert usage_of(everyone, {alpha, beta}) == [(beta, 2, 2, 7), (alpha, 2, 1, 5)]
    # Ordered by messages, then sessions, descending.
    keys = [(r["messages"], r["sessions"]) for r in everyone]
    assert keys == sorted(keys, reverse=True)

    # b sees only their own usage; the admin's own (non-admin) view would be empty of these.
    assert usage_of((await b.gql(POPULAR, {"d": 30, "l": 10}))["popularAgents"], {alpha, beta}) == [
        (beta, 1, 1, 6)
    ]
    # Defaults: 30 days, 10 agents.
    assert usage_of(
        (await a.gql("{ popularAgents { agent { name } sessions users messages } }"))["popularAgents"],
        {alpha, beta},
    ) == [
        (alpha, 2, 1, 5),
        (beta, 1, 1, 1),
    ]


async def test_popular_agents_empty_for_a_newcomer(api: Api) -> None:
    assert await api.gql("{ popularAgents { sessions } }") == {"popularAgents": []}


@pytest.mark.parametrize(("days", "limit"), [(0, 10), (3651, 10), (30, 0), (30, 101)])
async def test_popular_agents_rejects_bad_arguments(api: Api, days: int, limit: int) -> None:
    assert await api.code(POPULAR, {"d": days, "l": limit}) == "BAD_USER_INPUT"


# ---------------------------------------------------------------- real turns (sendMessage)

SEND = """mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) {
  run { id status startedAt finishedAt error { code } }
  messages { role usage { inputTokens outputTokens } cost toolCalls { id } } } }"""


async def send(api: Api, session_id: str, content: str) -> dict[str, Any]:
    sent: dict[str, Any] = (await api.gql(SEND, {"s": session_id, "c": content}))["sendMessage"]
    return sent


def duration_ms(run: dict[str, Any]) -> float:
    return (parse(run["finishedAt"]) - parse(run["startedAt"])).total_seconds() * 1000


def usage_sum(turns: list[dict[str, Any]]) -> tuple[int, int]:
    usages = [m["usage"] for t in turns for m in t["messages"] if m["usage"]]
    return sum(u["inputTokens"] for u in usages), sum(u["outputTokens"] for u in usages)


async def test_stats_after_real_turns(make_api: MakeApi, admin: Api) -> None:
    from pydantic_ai.exceptions import ModelHTTPError

    from tests.scripted import call, register, tool_returns

    api = await make_api()
    # The default agent's `echo` model answers with the user's words: n words in, n words out.
    echo = await new_session(api)
    e1 = await send(api, echo, "hello there world")
    e2 = await send(api, echo, "one two")
    assert [e1["run"]["status"], e2["run"]["status"]] == ["COMPLETED", "COMPLETED"]

    # A scripted agent: a turn that calls a tool then answers, then a turn whose model fails.
    failing = {"now": False}

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if failing["now"]:
            raise ModelHTTPError(500, "m", body={"error": "down"})
        if not tool_returns(messages):
            yield call("save_memory", '{"key": "mood", "value": "sunny", "scope": "session"}', "call-1")
        else:
            yield "noted"

    agent = f"tools-{uuid.uuid4().hex[:6]}"
    assert admin.runtime is not None
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": agent, "model": register(admin.runtime.models, stream)}},
    )
    tools = await new_session(api, agent)
    t1 = await send(api, tools, "remember my mood")
    assert [m["role"] for m in t1["messages"]] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    failing["now"] = True
    t2 = await send(api, tools, "and now?")
    assert t2["run"]["status"] == "FAILED" and [m["role"] for m in t2["messages"]] == ["USER"]

    query = f"query($id: UUID!) {{ session(id: $id) {{ stats {{ {STATS_FIELDS} }} }} }}"
    echo_stats = (await api.gql(query, {"id": echo}))["session"]["stats"]
    assert echo_stats.pop("averageResponseTimeMs") == pytest.approx(
        (duration_ms(e1["run"]) + duration_ms(e2["run"])) / 2, abs=0.01
    )
    echo_stats.pop("firstMessageAt"), echo_stats.pop("lastActivityAt")
    assert echo_stats == {
        "messageCount": 4,
        "userMessages": 2,
        "assistantMessages": 2,
        "toolCalls": 0,
        "errors": 0,
        "inputTokens": 5,
        "outputTokens": 5,
        "totalCost": 0.0,
    }

    tool_stats = (await api.gql(query, {"id": tools}))["session"]["stats"]
    assert tool_stats.pop("averageResponseTimeMs") == pytest.approx(duration_ms(t1["run"]), abs=0.01)
    tool_stats.pop("firstMessageAt"), tool_stats.pop("lastActivityAt")
    tool_in, tool_out = usage_sum([t1, t2])
    assert tool_in > 0 and tool_out > 0
    assert tool_stats == {
        "messageCount": 5,
        "userMessages": 2,
        "assistantMessages": 2,
        "toolCalls": 1,
        "errors": 1,
        "inputTokens": tool_in,
        "outputTokens": tool_out,
        "totalCost": 0.0,
    }

    usage = (await api.gql(f"{{ stats(days: 1) {{ {USAGE_FIELDS} }} }}"))["stats"]
    usage.pop("lastActivityAt")
    assert usage == {
        "periodDays": 1,
        "sessions": 2,
        "newSessions": 2,
        "activeSessions": 2,
        "messages": 9,
        "userMessages": 4,
        "assistantMessages": 4,
        "errors": 1,
        "inputTokens": 5 + tool_in,
        "outputTokens": 5 + tool_out,
        "totalCost": 0.0,
    }
    popular = (await api.gql(POPULAR, {"d": 1, "l": 10}))["popularAgents"]
    assert [(r["agent"]["name"], r["sessions"], r["users"], r["messages"]) for r in popular] == [
        (agent, 1, 1, 5),
        ("assistant", 1, 1, 4),
    ]
