"""Budgets (API.md section 10): daily tokens and cost, viewer.usageToday, Agent.maxRequestsPerRun."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai.models.function import FunctionModel

from tests.conftest import Api, subscription
from tests.scripted import call, register
from tests.test_runs import new_session, send
from tests.wsclient import CHAT, SubscriptionError

pytestmark = pytest.mark.asyncio(loop_scope="session")

BUDGET = """{ viewer {
  usageToday { periodDays messages userMessages inputTokens outputTokens totalCost }
  dailyBudget { tokenLimit costLimit tokensUsed costUsed tokensLeft costLeft }
} }"""
COUNT = "query($s: UUID!) { session(id: $s) { messageCount activeRun { id } } }"
SEND_KEYED = """mutation($s: UUID!, $c: String!, $k: String) {
  sendMessage(sessionId: $s, content: $c, idempotencyKey: $k) { run { id status cost } }
}"""


async def agent_of(admin: Api, model: str, **options: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name maxRequestsPerRun } }",
        {"i": {"name": name, "model": model, **options}},
    )
    return name


async def message_count(api: Api, session: str) -> int:
    return int((await api.gql(COUNT, {"s": session}))["session"]["messageCount"])


async def test_token_budget_refuses_new_runs_and_stores_nothing(configured: Any, schema: Any) -> None:
    user, admin = await configured(user_daily_tokens=1)
    session = await new_session(user)
    first = await send(user, session, "hello budget")
    assert first["run"]["status"] == "COMPLETED"
    used = first["run"]["usage"]["inputTokens"] + first["run"]["usage"]["outputTokens"]
    count = await message_count(user, session)

    error = await user.error(SEND_KEYED, {"s": session, "c": "one more"})
    assert error["extensions"]["code"] == "QUOTA_EXCEEDED" and "budget" in error["message"]
    assert await message_count(user, session) == count  # the user message was not stored

    # The stream refuses it the same way.
    with pytest.raises(SubscriptionError) as refused:
        async with subscription(
            schema, user.runtime, str(user.token), CHAT, {"s": session, "c": "x"}
        ) as events:
            async for _ in events:
                pass
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert await message_count(user, session) == count

    viewer = (await user.gql(BUDGET))["viewer"]
    assert viewer["dailyBudget"] == {
        "tokenLimit": 1,
        "costLimit": None,
        "tokensUsed": used,
        "costUsed": 0.0,
        "tokensLeft": 0,
        "costLeft": None,
    }
    today = viewer["usageToday"]
    assert today["periodDays"] == 1 and today["userMessages"] == 1 and today["messages"] == count
    assert today["inputTokens"] + today["outputTokens"] == used

    # Deleting the session gives nothing back.
    await user.gql("mutation($s: UUID!) { deleteSession(id: $s) }", {"s": session})
    fresh = await new_session(user)
    assert await user.code(SEND_KEYED, {"s": fresh, "c": "again"}) == "QUOTA_EXCEEDED"
    assert (await user.gql(BUDGET))["viewer"]["dailyBudget"]["tokensUsed"] == used

    # Budgets are per user.
    admin_session = await new_session(admin)
    assert (await send(admin, admin_session, "mine"))["run"]["status"] == "COMPLETED"


async def test_a_retry_of_a_started_run_is_no_new_run(configured: Any) -> None:
    user, _ = await configured(user_daily_tokens=1)
    session = await new_session(user)
    first = (await user.gql(SEND_KEYED, {"s": session, "c": "hi", "k": "k1"}))["sendMessage"]["run"]
    again = (await user.gql(SEND_KEYED, {"s": session, "c": "hi", "k": "k1"}))["sendMessage"]["run"]
    assert again["id"] == first["id"]
    assert await user.code(SEND_KEYED, {"s": session, "c": "hi", "k": "k2"}) == "QUOTA_EXCEEDED"


async def priced(messages: Any, info: Any) -> AsyncIterator[str]:
    yield "a reply that costs money"


async def test_cost_budget(configured: Any) -> None:
    user, admin = await configured(user_daily_cost=1e-9)
    model = f"script:priced-{uuid.uuid4().hex[:6]}"
    # A model name genai-prices knows: the scripted run is priced like the real model.
    user.rt.models.register(model, lambda: FunctionModel(stream_function=priced, model_name="gpt-4o-mini"))
    session = await new_session(user, await agent_of(admin, model))
    first = (await user.gql(SEND_KEYED, {"s": session, "c": "hello"}))["sendMessage"]["run"]
    assert first["status"] == "COMPLETED" and first["cost"] > 0
    assert await user.code(SEND_KEYED, {"s": session, "c": "more"}) == "QUOTA_EXCEEDED"
    budget = (await user.gql(BUDGET))["viewer"]["dailyBudget"]
    assert budget["costUsed"] == pytest.approx(first["cost"]) and budget["costLeft"] == 0.0
    assert budget["tokenLimit"] is None and budget["tokensLeft"] is None


async def test_budgets_hold_across_processes(configured: Any) -> None:
    """Two apps (processes, as far as the database can tell): what one ran counts on the other."""
    a_user, _ = await configured(user_daily_tokens=1)
    b_any, _ = await configured(user_daily_tokens=1)
    on_b = Api(b_any.client, a_user.token, a_user.name, b_any.runtime)
    session = await new_session(a_user)
    assert (await send(a_user, session, "hi"))["run"]["status"] == "COMPLETED"
    assert await on_b.code(SEND_KEYED, {"s": session, "c": "from b"}) == "QUOTA_EXCEEDED"


async def test_no_budget_no_limit(api: Api) -> None:
    budget = (await api.gql(BUDGET))["viewer"]["dailyBudget"]
    assert budget["tokenLimit"] is None and budget["costLimit"] is None and budget["tokensLeft"] is None


async def runaway(messages: Any, info: Any) -> AsyncIterator[Any]:
    """A model that calls a tool again after every result, for ever."""
    yield call("save_memory", '{"key": "loop", "value": 1, "scope": "session"}', f"c{len(messages)}")


async def test_a_runaway_tool_loop_ends_with_usage_limit(admin: Api, api: Api) -> None:
    model = register(admin.rt.models, runaway)
    limited = await agent_of(admin, model, maxRequestsPerRun=3)
    session = await new_session(api, limited)
    run = (await send(api, session, "go"))["run"]
    assert run["status"] == "FAILED" and run["error"]["code"] == "USAGE_LIMIT"
    assert run["usage"]["requests"] == 3
    assert run["reply"] is None
    # The calls made are history: user message, then a call and its result per request.
    assert await message_count(api, session) == 1 + 3 * 2
    # The session is free again.
    assert (await api.gql(COUNT, {"s": session}))["session"]["activeRun"] is None

    # The default is 20.
    default = await agent_of(admin, model)
    agents = (await api.gql("{ agents { name maxRequestsPerRun } }"))["agents"]
    assert {a["name"]: a["maxRequestsPerRun"] for a in agents}[default] == 20
    run = (await send(api, await new_session(api, default), "go"))["run"]
    assert run["status"] == "FAILED" and run["error"]["code"] == "USAGE_LIMIT"
    assert run["usage"]["requests"] == 20


async def test_max_requests_per_run_is_checked_and_changed(admin: Api) -> None:
    name = await agent_of(admin, "echo")
    update = "mutation($n: String!, $i: AgentUpdateInput!) { updateAgent(name: $n, input: $i) { maxRequestsPerRun } }"
    assert (await admin.gql(update, {"n": name, "i": {"maxRequestsPerRun": 5}}))["updateAgent"] == {
        "maxRequestsPerRun": 5
    }
    assert await admin.code(update, {"n": name, "i": {"maxRequestsPerRun": 0}}) == "BAD_USER_INPUT"
    create = "mutation($i: AgentInput!) { createAgent(input: $i) { name } }"
    bad = {"name": f"x-{uuid.uuid4().hex[:6]}", "model": "echo", "maxRequestsPerRun": 100_000}
    assert await admin.code(create, {"i": bad}) == "BAD_USER_INPUT"
