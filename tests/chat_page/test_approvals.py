"""Tool calls waiting for approval in the chat page: Approve and Deny, the reply going on in the
stream that was open, the prompt after a reload, Stop on a paused run; and Regenerate on a user
message whose reply failed.

The scripted model `script:asks` calls the memory tool `save_memory` (no MCP server needed) and
then says what the tool answered; its agent holds save_memory for approval.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator, expect

from tests.chat_page.conftest import ApiUser, ChatPage, OpenPage, gql, make_agent
from tests.servers import Server

HINT = "The reply waits for your decision: Approve or Deny"
STATE = """query($s: UUID!) { session(id: $s) {
  memory { key value }
  activeRun { status pendingApprovals { toolName } }
  messages(last: 1) { edges { node { role runId } } } } }"""


async def asking_agent(server: Server, admin: ApiUser) -> str:
    return await make_agent(server, admin, "script:asks", approvalRequired=["save_memory"])


def prompt(chat: ChatPage, tool: str = "save_memory") -> Locator:
    return chat.log().get_by_role("group", name=f"Tool call {tool}")


async def session_state(chat: ChatPage, user: ApiUser) -> dict[str, Any]:
    state: dict[str, Any] = (await gql(chat.server, user.token, STATE, {"s": chat.session_id()}))["session"]
    return state


async def expect_paused(chat: ChatPage) -> Locator:
    """The prompt of one save_memory call is shown, Send waits and says why."""
    call = prompt(chat)
    await expect(call).to_be_visible()
    await expect(call.locator("pre")).to_contain_text('"key": "colour"')
    await expect(call.get_by_role("button", name="Approve")).to_be_enabled()
    await chat.page.get_by_role("textbox", name="Message").fill("meanwhile")
    await expect(chat.page.get_by_role("button", name="Send")).to_be_disabled()
    await expect(chat.page.get_by_role("status").filter(has_text=HINT)).to_be_visible()
    await expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    return call


async def expect_idle(chat: ChatPage) -> None:
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)
    await expect(chat.log().get_by_role("group", name="Approval needed")).to_have_count(0)
    await expect(chat.page.get_by_text(HINT)).to_have_count(0)


async def test_approve_runs_the_tool_and_the_reply_goes_on(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await asking_agent(chat_server, admin)
    chat = await open_page(api)
    await chat.new_chat(agent, "remember my colour")
    call = await expect_paused(chat)
    paused = await session_state(chat, api)
    assert paused["activeRun"] == {
        "status": "WAITING_APPROVAL",
        "pendingApprovals": [{"toolName": "save_memory"}],
    }
    assert paused["memory"] == []  # nothing runs before the decision

    await call.get_by_role("button", name="Approve").click()
    reply = chat.articles("assistant").last
    await expect(reply).to_contain_text("The tool answered: saved 'colour' (session)")
    await expect(chat.articles("tool")).to_have_count(1)
    await expect_idle(chat)
    await expect(chat.page.get_by_role("textbox", name="Message")).to_be_focused()
    await expect(chat.page.get_by_role("button", name="Send")).to_be_enabled()  # "meanwhile" can go now
    done = await session_state(chat, api)
    assert done["memory"] == [{"key": "colour", "value": "colour noted"}] and done["activeRun"] is None


async def test_each_call_is_decided_then_all_go_at_once_and_a_denial_reaches_the_model(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await asking_agent(chat_server, admin)
    chat = await open_page(api)
    await chat.new_chat(agent, "remember two things")
    calls = prompt(chat)
    await expect(calls).to_have_count(2)
    colour, size = calls.first, calls.nth(1)
    await expect(colour.locator("pre")).to_contain_text('"key": "colour"')
    await expect(size.locator("pre")).to_contain_text('"key": "size"')
    await expect(chat.log().get_by_role("button", name="Approve all")).to_be_visible()

    await colour.get_by_role("button", name="Approve").click()  # kept until the other is decided
    await expect(colour).to_contain_text("Approved")
    await expect(chat.log().get_by_role("button", name="Approve all")).to_have_count(0)
    assert (await session_state(chat, api))["activeRun"]["status"] == "WAITING_APPROVAL"

    await size.get_by_role("textbox", name="Reason").fill("not my size")
    await size.get_by_role("button", name="Deny").click()
    reply = chat.articles("assistant").last
    await expect(reply).to_contain_text("The tool answered: saved 'colour' (session); not my size")
    await expect_idle(chat)
    assert (await session_state(chat, api))["memory"] == [{"key": "colour", "value": "colour noted"}]


async def test_a_reload_or_another_tab_shows_the_prompt_and_a_decision_goes_on_in_both(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await asking_agent(chat_server, admin)
    chat = await open_page(api)
    await chat.new_chat(agent, "remember my colour")
    await expect_paused(chat)
    await chat.page.reload()  # the watcher joins the paused run: RunStarted, then ApprovalRequested
    call = await expect_paused(chat)
    await expect(chat.articles("user")).to_have_count(1)
    other = await open_page(api)  # another tab on the same chat
    await other.page.goto(f"/#/s/{chat.session_id()}")
    await expect_paused(other)

    await call.get_by_role("textbox", name="Reason").fill("ask me tomorrow")
    await call.get_by_role("button", name="Deny").click()
    for page in (chat, other):  # the other tab sees the run go on: its prompt goes
        await expect(page.articles("assistant").last).to_contain_text("The tool answered: ask me tomorrow")
        await expect_idle(page)
    assert (await session_state(chat, api))["memory"] == []


async def test_stop_ends_a_paused_run_and_the_chat_goes_on(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await asking_agent(chat_server, admin)
    chat = await open_page(api)
    await chat.new_chat(agent, "remember my colour")
    await expect_paused(chat)
    await chat.page.get_by_role("button", name="Stop").click()
    await expect_idle(chat)
    last = (await session_state(chat, api))["messages"]["edges"][0]["node"]
    run = await gql(
        chat_server, api.token, "query($r: UUID!) { run(id: $r) { status } }", {"r": last["runId"]}
    )
    assert run["run"]["status"] == "CANCELLED"

    await chat.send("remember it after all")  # the session is free: the model asks again
    await prompt(chat).get_by_role("button", name="Approve").click()
    await expect(chat.articles("assistant").last).to_contain_text(
        "The tool answered: saved 'colour' (session)"
    )
    await expect_idle(chat)


async def test_regenerate_answers_a_message_whose_reply_failed(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:flaky")
    chat = await open_page(api)
    await chat.new_chat(agent, "are you there")
    await expect(chat.log().get_by_role("alert")).to_contain_text("PROVIDER_ERROR")
    await chat.page.reload()  # the failed run is not shown after a reload, but the way on is
    question = chat.articles("user")
    await question.get_by_role("button", name="Regenerate").click()
    await expect(chat.articles("assistant").locator(".markdown")).to_have_text("second try: are you there")
    await expect(question.get_by_role("button", name="Regenerate")).to_have_count(0)  # it is answered
    await expect(chat.articles("assistant").get_by_role("button", name="Regenerate")).to_be_enabled()
