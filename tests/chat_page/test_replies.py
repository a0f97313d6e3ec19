"""Replies in the chat page: streaming, Stop, tool calls, failures, joining and resuming."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from playwright.async_api import WebSocketRoute, expect

from tests.chat_page.conftest import ApiUser, ChatPage, OpenPage, gql, make_agent, until
from tests.servers import Server

GRAPHQL_WS = re.compile(r"/graphql$")

# Notes the live reply's length each time the page changes it.
RECORD_GROWTH = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const live = document.querySelector("[role=log] article[aria-busy=true][aria-label=assistant]");
    if (live) window.__lengths.push(live.textContent.length);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""

SEND = """mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { status } } }"""


def words(n: int) -> str:
    """What the slow model says for "count n"."""
    return " ".join(f"w{i}" for i in range(n))


async def reply_text(chat: ChatPage) -> str:
    return (await chat.articles("assistant").last.locator(".markdown").inner_text()).strip()


async def wait_for_run(server: Server, api: ApiUser, sid: str) -> None:
    query = "query($s: UUID!) { session(id: $s) { activeRun { id } } }"

    async def running() -> bool:
        return (await gql(server, api.token, query, {"s": sid}))["session"]["activeRun"] is not None

    await until(running, "the run to start")


async def start_run(server: Server, api: ApiUser, agent: str, content: str) -> tuple[str, asyncio.Task[Any]]:
    """A session whose reply is running now, sent over HTTP by someone other than the page."""
    create = "mutation($a: String) { createSession(input: {agentName: $a}) { id } }"
    sid = (await gql(server, api.token, create, {"a": agent}))["createSession"]["id"]
    task = asyncio.create_task(gql(server, api.token, SEND, {"s": sid, "c": content}))
    await wait_for_run(server, api, sid)
    return sid, task


async def test_a_reply_streams_in_steps_and_enter_sends(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:slow")
    chat = await open_page(api)
    await chat.page.get_by_role("button", name="New chat").click()
    await chat.page.get_by_role("combobox", name="Agent").select_option(agent)
    await chat.page.evaluate(RECORD_GROWTH)
    box = chat.page.get_by_role("textbox", name="Message")
    await box.type("count")
    await box.press("Shift+Enter")  # a new line, not a send
    await box.type("60")
    await box.press("Enter")

    stop = chat.page.get_by_role("button", name="Stop")
    await expect(stop).to_be_visible()
    await expect(chat.page.get_by_role("button", name="Send")).to_be_disabled()
    await expect(chat.articles("user").locator(".text")).to_have_text("count\n60")
    await expect(stop).to_have_count(0)  # the reply is complete
    assert await reply_text(chat) == words(60)

    lengths: list[int] = await chat.page.evaluate("window.__lengths")
    steps = sorted({n for n in lengths if n > 1})
    assert len(steps) >= 5, f"the reply appeared in {len(steps)} steps: {steps}"
    assert steps[0] < len(words(60)) / 2, steps  # it was showing long before the end
    detail = chat.articles("assistant").last.locator(".detail")
    await expect(detail).to_contain_text("script:slow")
    await expect(detail).to_contain_text("tokens")


async def test_stop_ends_a_reply_and_keeps_its_text(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:slow")
    chat = await open_page(api)
    await chat.new_chat(agent, "count 3000")
    await expect(chat.articles("assistant").last).to_contain_text("w10")
    await chat.page.get_by_role("button", name="Stop").click()
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)

    kept = await reply_text(chat)
    assert kept.startswith("w0 w1 w2") and "w2999" not in kept
    query = """query($s: UUID!) { session(id: $s) { activeRun { id }
      messages(last: 1) { edges { node { role content runId } } } } }"""
    session = (await gql(chat_server, api.token, query, {"s": chat.session_id()}))["session"]
    last = session["messages"]["edges"][0]["node"]
    assert session["activeRun"] is None and last["role"] == "ASSISTANT"
    assert last["content"].strip() == kept
    run = await gql(
        chat_server, api.token, "query($r: UUID!) { run(id: $r) { status } }", {"r": last["runId"]}
    )
    assert run["run"]["status"] == "CANCELLED"

    await chat.send("count 3")  # the chat takes the next message at once
    await expect(chat.articles("assistant")).to_have_count(2)
    await expect(chat.articles("assistant").last).to_have_text(re.compile(r"^w0 w1 w2\b"))


async def test_thinking_and_tool_calls_are_shown_collapsed_with_their_results(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:tools")
    chat = await open_page(api)
    await chat.new_chat(agent, "note the topic")
    await expect(chat.articles("assistant").last).to_contain_text("Saved it.")
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)

    call = chat.log().locator("details", has_text="Tool call: save_memory").first
    await expect(call).not_to_have_attribute("open", "")
    await call.locator("summary").click()
    await expect(call).to_contain_text('"key": "topic"')
    await expect(chat.articles("tool")).to_have_count(1)
    result = chat.articles("tool").locator("details")
    await expect(result).not_to_have_attribute("open", "")
    thinking = chat.log().locator("details.thinking")
    await expect(thinking).to_have_count(1)
    await thinking.locator("summary").click()
    await expect(thinking).to_contain_text("let me note that")


async def test_a_failing_provider_is_a_readable_notice(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:fail")
    chat = await open_page(api)
    await chat.new_chat(agent, "hello there")
    alert = chat.log().get_by_role("alert")
    await expect(alert).to_contain_text("PROVIDER_ERROR")
    await expect(alert).to_contain_text("HTTP 500")
    await expect(chat.articles("user").locator(".text")).to_have_text("hello there")  # the message stays
    assert "secret provider detail" not in await chat.page.content()


async def test_opening_a_chat_mid_reply_joins_it(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:slow")
    sid, task = await start_run(chat_server, api, agent, "count 300")  # 6 s: time to sign in and open it
    chat = await open_page(api)
    await chat.page.get_by_role("navigation", name="Sessions").get_by_role("link", name="count 300").click()

    live = chat.log().locator("article[aria-busy=true][aria-label=assistant]")
    await expect(live).to_contain_text("w")  # the snapshot of the text so far, then deltas
    await expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)
    assert await reply_text(chat) == words(300)  # no gap, no duplicate
    assert (await task)["sendMessage"]["run"]["status"] == "COMPLETED"
    assert chat.session_id() == sid


async def test_run_in_progress_is_a_notice_and_the_page_joins_that_reply(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:slow")
    create = 'mutation($a: String) { createSession(input: {agentName: $a, title: "busy"}) { id } }'
    sid = (await gql(chat_server, api.token, create, {"a": agent}))["createSession"]["id"]
    chat = await open_page()

    # The page's first watcher is muted, so the page cannot know a reply started elsewhere.
    muted: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if (
                frame.get("type") == "subscribe"
                and "sessionEvents" in frame["payload"]["query"]
                and not muted
            ):
                muted.append(frame["id"])
            server.send(message)

        def from_server(message: str | bytes) -> None:
            if json.loads(message).get("id") not in muted:
                ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    await chat.page.route_web_socket(GRAPHQL_WS, route)
    await chat.sign_in(api)
    await chat.page.goto(f"/#/s/{sid}")
    await expect(chat.page.get_by_role("heading", name="busy")).to_be_visible()
    await until(lambda: bool(muted), "the page's watcher")
    task = asyncio.create_task(gql(chat_server, api.token, SEND, {"s": sid, "c": "count 200"}))
    await wait_for_run(chat_server, api, sid)
    await chat.send("hello?")

    await expect(chat.page.get_by_role("alert").filter(has_text="still writing a reply")).to_be_visible()
    await expect(chat.page.get_by_role("textbox", name="Message")).to_have_value("hello?")  # given back
    await expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()  # joined the reply
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)
    assert await reply_text(chat) == words(200)
    await task


async def test_a_dropped_socket_resumes_the_reply_without_gap_or_duplicate(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:slow")
    chat = await open_page()
    sockets: list[WebSocketRoute] = []
    subscribed: list[dict[str, Any]] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "subscribe":
                subscribed.append(frame["payload"])
            server.send(message)

        ws.on_message(from_page)
        sockets.append(ws)

    await chat.page.route_web_socket(GRAPHQL_WS, route)
    await chat.sign_in(api)
    await chat.new_chat(agent, "count 150")
    live = chat.log().locator("article[aria-busy=true][aria-label=assistant]")
    await expect(live).to_contain_text("w20")

    await sockets[0].close(code=1006, reason="the network went away")  # as a dropped connection does
    await expect(chat.page.get_by_role("status")).to_have_text("Reconnecting…")
    await expect(chat.page.get_by_role("status")).to_have_count(0)
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)
    assert await reply_text(chat) == words(150)

    assert len(sockets) >= 2
    resumed = [
        p for p in subscribed if "sessionEvents" in p["query"] and p["variables"]["afterSequence"] is not None
    ]
    assert resumed, subscribed
    assert resumed[0]["variables"]["afterSequence"] == 0  # one message back from the user's (sequence 1)
