"""The user's usage in the chat page: what the last 24 hours used (`viewer.usageToday`) and what
is left of the daily budget (`viewer.dailyBudget`) under the session list, and a spent budget
(QUOTA_EXCEEDED) as a readable notice. On a server of its own with a budget of 50 tokens: a
scripted reply uses more (pydantic-ai counts 50 input tokens and up for any prompt), so the first
reply passes and the next is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from tests.chat_page.conftest import ApiUser, OpenPage, gql, make_agent
from tests.servers import Server, parley_server

BUDGET = 50
USAGE = "{ viewer { usageToday { inputTokens outputTokens totalCost } dailyBudget { tokensLeft } } }"


@pytest.fixture(scope="module")
def budget_server(
    database_url: str, app: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with parley_server(
        database_url, tmp_path_factory.mktemp("budget"), "budget", PARLEY_USER_DAILY_TOKENS=str(BUDGET)
    ) as server:
        yield server


async def test_usage_today_and_the_budget_left_then_a_spent_budget_is_a_notice(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, budget_server: Server
) -> None:
    agent = await make_agent(budget_server, admin, "script:priced")  # replies with a cost
    chat = await open_page(api, server=budget_server)
    usage = chat.page.get_by_role("region", name="Usage today")
    await expect(usage).to_have_text(f"Today: 0 tokens · $0Left: {BUDGET} of {BUDGET} tokens")

    await chat.new_chat(agent, "hello")
    await expect(chat.articles("assistant")).to_contain_text("take 1: hello")
    viewer = (await gql(budget_server, api.token, USAGE))["viewer"]
    used = viewer["usageToday"]
    tokens = used["inputTokens"] + used["outputTokens"]
    assert tokens > BUDGET and used["totalCost"] > 0 and viewer["dailyBudget"] == {"tokensLeft": 0}
    await expect(usage).to_contain_text(re.compile(rf"Today: {tokens} tokens · \$0\.0+[1-9]"))
    await expect(usage).to_contain_text(f"Left: 0 of {BUDGET} tokens")
    await expect(usage).to_contain_text("The daily budget is spent")

    await chat.send("again")
    notice = chat.page.get_by_role("alert").filter(
        has_text="No reply can start now: the daily token budget is spent"
    )
    await expect(notice).to_contain_text(f"({tokens} of {BUDGET} tokens in the last 24 hours)")
    await expect(chat.page.get_by_role("textbox", name="Message")).to_have_value("again")  # given back
    await expect(chat.articles("user")).to_have_count(1)  # nothing stored
