"""Signing in and out, the session list, search, rename and delete in the chat page."""

from __future__ import annotations

import re

from playwright.async_api import Route, expect

from tests.chat_page.conftest import ApiUser, OpenPage, gql
from tests.servers import Server

CREATE = "mutation($t: String) { createSession(input: {title: $t}) { id } }"
ADD = "mutation($s: UUID!, $m: [MessageInput!]!) { addMessages(sessionId: $s, messages: $m) { id } }"


async def test_sign_in_with_a_bad_then_a_good_token_then_sign_out(open_page: OpenPage, api: ApiUser) -> None:
    chat = await open_page()
    await chat.page.get_by_role("textbox", name="API token").fill("pk_not-a-real-token")
    await chat.page.get_by_role("button", name="Sign in").click()
    await expect(chat.page.get_by_role("alert")).to_contain_text("not accepted")

    await chat.sign_in(api)
    await expect(chat.page.get_by_text(api.name, exact=True)).to_be_visible()
    await chat.page.reload()  # the token stays in local storage
    await expect(chat.page.get_by_role("navigation", name="Sessions")).to_be_visible()

    await chat.page.get_by_role("button", name="Sign out").click()
    await expect(chat.page.get_by_role("textbox", name="API token")).to_be_visible()
    assert await chat.page.evaluate("localStorage.getItem('parley.token')") is None


async def test_sessions_page_in_newest_first_and_search_jumps_to_an_old_message(
    open_page: OpenPage, api: ApiUser, chat_server: Server
) -> None:
    for i in range(25):
        await gql(chat_server, api.token, CREATE, {"t": f"chat {i:02}"})
    far = (await gql(chat_server, api.token, CREATE, {"t": "long chat"}))["createSession"]["id"]
    history = [
        {
            "role": "USER" if i % 2 == 0 else "ASSISTANT",
            "content": f"message {i}" + (" zanzibar" if i == 3 else ""),
        }
        for i in range(80)
    ]
    await gql(chat_server, api.token, ADD, {"s": far, "m": history})

    chat = await open_page(api)
    nav = chat.page.get_by_role("navigation", name="Sessions")
    links = nav.get_by_role("list").get_by_role("link")
    await expect(links).to_have_count(20)  # the first page
    await expect(links.first).to_contain_text("long chat")  # newest activity first
    await expect(links.first.locator("time")).to_have_text("now")
    await expect(links.nth(1)).to_contain_text("chat 24")
    await nav.get_by_role("button", name="Load more sessions").scroll_into_view_if_needed()
    await expect(links).to_have_count(26)  # the next page, after the keyset cursor
    names = await links.all_inner_texts()
    assert len(set(names)) == 26 and names[-1].startswith("chat 00")

    await nav.get_by_role("searchbox", name="Search messages").fill("zanzibar")
    hit = nav.get_by_role("link", name=re.compile("zanzibar"))
    await expect(hit).to_have_count(1)
    await hit.click()
    found = chat.log().get_by_role("article").filter(has_text="message 3 zanzibar")
    await expect(found).to_be_focused()  # two pages back: older messages were loaded to reach it
    await expect(chat.page.get_by_role("heading", name="long chat")).to_be_visible()


async def test_rename_and_delete_a_chat(open_page: OpenPage, api: ApiUser, chat_server: Server) -> None:
    sid = (await gql(chat_server, api.token, CREATE, {"t": "old name"}))["createSession"]["id"]
    chat = await open_page(api)
    nav = chat.page.get_by_role("navigation", name="Sessions")
    await nav.get_by_role("link", name=re.compile("old name")).click()

    await chat.page.get_by_role("button", name="Rename chat").click()
    await chat.page.get_by_role("textbox", name="Chat title").fill("new name")

    async def offline(route: Route) -> None:
        await route.abort()

    await chat.page.route("**/graphql", offline)  # the network fails once: a notice, not a blank page
    await chat.page.get_by_role("button", name="Save").click()
    await expect(chat.page.get_by_role("alert").filter(has_text="cannot be reached")).to_be_visible()
    await chat.page.unroute("**/graphql", offline)
    await chat.page.get_by_role("button", name="Save").click()
    await expect(chat.page.get_by_role("heading", name="new name")).to_be_visible()
    await expect(nav.get_by_role("link", name=re.compile("new name"))).to_be_visible()

    await chat.page.get_by_role("button", name="Delete chat").click()
    await chat.page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(nav.get_by_role("link", name=re.compile("new name"))).to_have_count(0)
    await expect(chat.page).to_have_url(re.compile(r"#/$"))
    query = "query($s: UUID!) { session(id: $s) { id } }"
    assert (await gql(chat_server, api.token, query, {"s": sid}))["session"] is None


async def test_a_phone_sized_screen_hides_the_sessions_in_a_drawer(open_page: OpenPage, api: ApiUser) -> None:
    chat = await open_page(api, width=390, height=844)
    nav = chat.page.get_by_role("navigation", name="Sessions")
    await expect(chat.page.get_by_role("textbox", name="Message")).to_be_visible()
    await expect(nav).to_be_hidden()
    await chat.page.get_by_role("button", name="Show sessions").click()
    await expect(nav).to_be_visible()
    await nav.get_by_role("button", name="New chat").click()
    await expect(nav).to_be_hidden()
    await chat.send("hello from a phone")
    await expect(chat.articles("assistant")).to_contain_text("hello from a phone")  # the echo model
