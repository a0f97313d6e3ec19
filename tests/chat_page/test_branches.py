"""Branches in the chat page: Edit, Regenerate, the branch picker, and the active branch kept
across a reload and a dropped socket."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from playwright.async_api import Locator, WebSocketRoute, expect

from tests.chat_page.conftest import ApiUser, ChatPage, OpenPage, gql, make_agent
from tests.servers import Server

GRAPHQL_WS = re.compile(r"/graphql$")
SEND = """mutation($s: UUID!, $c: String!) {
  sendMessage(sessionId: $s, content: $c) { userMessage { id } reply { id } } }"""


async def idle(chat: ChatPage) -> None:
    """The reply has ended (and its message is shown)."""
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)
    await expect(chat.log().locator("article[aria-busy=true]")).to_have_count(0)


def picker(article: Locator) -> Locator:
    return article.get_by_role("group", name="Branch")


async def test_edit_streams_a_new_version_and_the_picker_moves_between_versions(
    open_page: OpenPage, api: ApiUser
) -> None:
    chat = await open_page(api)
    await chat.new_chat(None, "first words")  # the echo model repeats them
    user, reply = chat.articles("user"), chat.articles("assistant").last
    await expect(reply).to_have_text(re.compile("first words"))
    await idle(chat)
    await expect(picker(user)).to_have_count(0)  # one version: no picker

    edit = user.get_by_role("button", name="Edit")
    await edit.click()
    editor = user.get_by_role("textbox", name="Edited text")
    await expect(editor).to_have_value("first words")
    await expect(editor).to_be_focused()
    await editor.press("Escape")  # cancels
    await expect(editor).to_have_count(0)
    await expect(edit).to_be_focused()
    await expect(user.locator(".text")).to_have_text("first words")

    await edit.click()
    await editor.fill("second words")
    await editor.press("Enter")
    await expect(user.locator(".text")).to_have_text("second words")
    await expect(reply).to_have_text(re.compile("second words"))
    await idle(chat)
    await expect(chat.articles("user")).to_have_count(1)  # the old version gave way
    await expect(chat.articles("assistant")).to_have_count(1)
    await expect(picker(user)).to_contain_text("2/2")

    await picker(user).get_by_role("button", name="Previous branch").click()
    await expect(user.locator(".text")).to_have_text("first words")
    await expect(reply).to_have_text(re.compile("first words"))
    await expect(picker(user)).to_contain_text("1/2")
    await expect(picker(user).get_by_role("button", name="Previous branch")).to_be_disabled()
    await expect(picker(user).get_by_role("button", name="Next branch")).to_be_focused()  # the keyboard stays

    await picker(user).get_by_role("button", name="Next branch").click()
    await expect(user.locator(".text")).to_have_text("second words")
    await expect(reply).to_have_text(re.compile("second words"))

    # A third version, sent with the editor's Send button.
    await user.get_by_role("button", name="Edit").click()
    await editor.fill("third words")
    await user.get_by_role("button", name="Send").click()
    await expect(reply).to_have_text(re.compile("third words"))
    await expect(picker(user)).to_contain_text("3/3")
    await picker(user).get_by_role("button", name="Previous branch").click()
    await expect(picker(user)).to_contain_text("2/3")
    await expect(user.locator(".text")).to_have_text("second words")

    await chat.page.reload()  # Parley keeps the head: the same branch comes back
    await expect(user.locator(".text")).to_have_text("second words")
    await expect(reply).to_have_text(re.compile("second words"))
    await expect(picker(user)).to_contain_text("2/3")


async def test_regenerate_streams_a_new_reply_with_its_cost_and_a_reload_keeps_the_branch(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:priced")  # "take N: ...", with a known price
    words = f"hello {uuid.uuid4().hex[:8]} there"
    chat = await open_page(api)
    await chat.new_chat(agent, words)
    reply = chat.articles("assistant").last
    await expect(reply.locator(".markdown")).to_have_text(f"take 1: {words}")
    await idle(chat)
    await expect(reply.locator(".detail")).to_contain_text(
        re.compile(r"gpt-4o-mini · \d+ in · \d+ out tokens · \$0\.0")
    )

    await reply.get_by_role("button", name="Regenerate").click()
    await expect(reply.locator(".markdown")).to_have_text(f"take 2: {words}")
    await idle(chat)
    await expect(chat.articles("assistant")).to_have_count(1)
    await expect(picker(reply)).to_contain_text("2/2")
    await expect(reply.locator(".detail")).to_contain_text("$0.0")
    await expect(picker(chat.articles("user"))).to_have_count(0)  # the question is the same one

    await picker(reply).get_by_role("button", name="Previous branch").click()
    await expect(reply.locator(".markdown")).to_have_text(f"take 1: {words}")
    await expect(picker(reply)).to_contain_text("1/2")

    await chat.page.reload()
    await expect(reply.locator(".markdown")).to_have_text(f"take 1: {words}")
    await expect(picker(reply)).to_contain_text("1/2")
    await picker(reply).get_by_role("button", name="Next branch").click()
    await expect(reply.locator(".markdown")).to_have_text(f"take 2: {words}")
    await expect(picker(reply)).to_contain_text("2/2")


async def test_branch_controls_wait_while_a_reply_runs(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:slow")
    chat = await open_page(api)
    await chat.new_chat(agent, "count 3000")
    stop = chat.page.get_by_role("button", name="Stop")
    await expect(chat.articles("assistant").last).to_contain_text("w5")
    await expect(chat.articles("user").get_by_role("button", name="Edit")).to_be_disabled()
    await stop.click()
    await idle(chat)

    reply = chat.articles("assistant").last
    await reply.get_by_role("button", name="Regenerate").click()
    live = chat.log().locator("article[aria-busy=true][aria-label=assistant]")
    await expect(live).to_contain_text("w5")
    await expect(chat.articles("assistant")).to_have_count(1)  # the live reply, in place of the old one
    await expect(chat.articles("user").get_by_role("button", name="Edit")).to_be_disabled()
    await expect(chat.page.get_by_role("button", name="Send")).to_be_disabled()
    await stop.click()
    await idle(chat)
    await expect(picker(reply)).to_contain_text("2/2")
    await expect(picker(reply).get_by_role("button", name="Previous branch")).to_be_enabled()
    await expect(reply.get_by_role("button", name="Regenerate")).to_be_enabled()


async def test_a_resumed_watcher_shows_the_active_branch_not_what_it_replays(
    open_page: OpenPage, api: ApiUser, chat_server: Server
) -> None:
    create = 'mutation { createSession(input: {title: "versions"}) { id } }'
    sid = (await gql(chat_server, api.token, create))["createSession"]["id"]
    one = (await gql(chat_server, api.token, SEND, {"s": sid, "c": "one"}))["sendMessage"]

    chat = await open_page()
    sockets: list[WebSocketRoute] = []
    watchers: list[dict[str, Any]] = []  # sessionEvents subscriptions: id, variables, socket
    muted = False  # while set, the first socket's watchers hear nothing

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        index = len(sockets)
        sockets.append(ws)

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "subscribe" and "sessionEvents" in frame["payload"]["query"]:
                watchers.append({"id": frame["id"], "socket": index, **frame["payload"]["variables"]})
            server.send(message)

        def from_server(message: str | bytes) -> None:
            frame_id = json.loads(message).get("id")
            if muted and index == 0 and any(w["id"] == frame_id for w in watchers):
                return
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    await chat.page.route_web_socket(GRAPHQL_WS, route)
    await chat.sign_in(api)
    await chat.page.goto(f"/#/s/{sid}")
    user, reply = chat.articles("user"), chat.articles("assistant").last
    await expect(reply).to_have_text(re.compile("one"))

    # Edited elsewhere while the page watches: it shows the new version, which is active.
    edit = """mutation($m: UUID!) { editMessage(messageId: $m, content: "two") { reply { id } } }"""
    two = (await gql(chat_server, api.token, edit, {"m": one["userMessage"]["id"]}))["editMessage"]
    await expect(user.locator(".text")).to_have_text("two")
    await expect(reply).to_have_text(re.compile("two"))
    await expect(picker(user)).to_contain_text("2/2")
    await idle(chat)  # the page has heard the whole reply

    # Unheard by the page: a third reply on that branch, then the first branch made active again.
    muted = True
    regenerate = "mutation($m: UUID!) { regenerate(messageId: $m) { reply { id } } }"
    await gql(chat_server, api.token, regenerate, {"m": two["reply"]["id"]})
    switch = "mutation($m: UUID!) { switchBranch(messageId: $m) { headMessageId } }"
    head = await gql(chat_server, api.token, switch, {"m": one["userMessage"]["id"]})
    assert head["switchBranch"]["headMessageId"] == one["reply"]["id"]
    await expect(user.locator(".text")).to_have_text("two")

    # The socket drops: the watcher resumes after the last message it heard, and the reply it
    # replays belongs to a branch that is no longer active. The page shows the active one.
    await sockets[0].close(code=1006, reason="the network went away")
    await expect(chat.page.get_by_role("status")).to_have_text("Reconnecting…")
    await expect(chat.page.get_by_role("status")).to_have_count(0)
    await expect(user.locator(".text")).to_have_text("one")
    await expect(reply).to_have_text(re.compile("one"))
    await expect(picker(user)).to_contain_text("1/2")
    await expect(chat.articles("assistant")).to_have_count(1)
    resumed = [w for w in watchers if w["socket"] > 0]
    assert resumed and resumed[0]["afterSequence"] == 4, watchers  # after the reply to "two"


async def test_a_search_hit_on_another_branch_makes_that_branch_active(
    open_page: OpenPage, api: ApiUser, chat_server: Server
) -> None:
    create = 'mutation { createSession(input: {title: "two versions"}) { id } }'
    sid = (await gql(chat_server, api.token, create))["createSession"]["id"]
    tag = uuid.uuid4().hex[:8]
    one = (await gql(chat_server, api.token, SEND, {"s": sid, "c": f"alpha {tag}"}))["sendMessage"]
    edit = """mutation($m: UUID!, $c: String!) { editMessage(messageId: $m, content: $c) { reply { id } } }"""
    await gql(chat_server, api.token, edit, {"m": one["userMessage"]["id"], "c": f"bravo {tag}"})
    switch = "mutation($m: UUID!) { switchBranch(messageId: $m) { id } }"
    await gql(chat_server, api.token, switch, {"m": one["userMessage"]["id"]})  # alpha is active

    chat = await open_page(api)
    nav = chat.page.get_by_role("navigation", name="Sessions")
    await nav.get_by_role("searchbox", name="Search messages").fill(f"bravo {tag}")
    hits = nav.get_by_role("link", name=re.compile("bravo"))
    await expect(hits).to_have_count(2)  # the words and their echo
    await hits.first.click()
    await expect(chat.log().locator("article:focus")).to_contain_text(f"bravo {tag}")  # the hit
    await expect(chat.articles("user").locator(".text")).to_have_text(f"bravo {tag}")
    await expect(picker(chat.articles("user"))).to_contain_text("2/2")
    await expect(chat.log()).not_to_contain_text("alpha")
