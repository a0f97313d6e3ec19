"""Browser tests of the chat page at ``GET /``.

The machine's Chromium (Debian's ``chromium``; Playwright never downloads a browser) drives the
page against a real ``parley serve`` process whose scripted models come from tests/plugins.py.
Every page opened here records the hosts it talks to and traps ``alert`` and friends: the
``open_page`` fixture fails a test whose page contacted another host, ran script from a message
(``window.__xss``) or threw an uncaught error. Every wait (Playwright's expectations, ``until``)
has a timeout; none sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, Route, async_playwright, expect

from tests.servers import Server, parley_server

WAIT_MS = 15_000  # the longest any single expectation may take
expect.set_options(timeout=WAIT_MS)

# Installed before the page's own scripts: any script a message manages to run shows up here.
XSS_TRAP = """
window.__xss = null;
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => { window.__xss = `${name}(${message})`; };
}
"""


def chromium_path() -> str:
    """The system Chromium; missing, the tests fail (skipped only with PARLEY_BROWSER_TESTS=skip)."""
    if os.environ.get("PARLEY_BROWSER_TESTS") == "skip":
        pytest.skip("PARLEY_BROWSER_TESTS=skip: the chat page's browser tests are switched off here")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "the chat page tests need Chromium: `apt-get install -y chromium` "
            "(or set PARLEY_BROWSER_TESTS=skip to run the rest without it locally)"
        )
    return path


async def until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = WAIT_MS / 1000
) -> None:
    """Polls something the test can observe until it holds, or fails after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class ApiUser(Protocol):
    """A user of the suite's ``api`` and ``admin`` fixtures (tests/conftest.py)."""

    token: str
    name: str


@pytest.fixture(scope="session")
def chat_server(database_url: str, app: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with parley_server(database_url, tmp_path_factory.mktemp("chat-page"), "chat") as server:
        yield server


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        # --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers).
        browser = await playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        await browser.close()


async def gql(
    server: Server, token: str | None, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A GraphQL operation against the server process; its `data` (fails the test on errors)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def make_agent(server: Server, admin: ApiUser, model: str, **fields: Any) -> str:
    """An agent of the scripted `model` (more AgentInput `fields`, e.g. approvalRequired); its name."""
    name = f"{model.removeprefix('script:')}-{uuid.uuid4().hex[:6]}"
    mutation = "mutation($i: AgentInput!) { createAgent(input: $i) { name } }"
    spec = {"name": name, "model": model, "memoryEnabled": True, **fields}
    await gql(server, admin.token, mutation, {"i": spec})
    return name


@dataclass
class ChatPage:
    """A browser page on the chat page, and what it did."""

    page: Page
    server: Server
    hosts: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    async def sign_in(self, user: ApiUser) -> None:
        assert user.token is not None
        await self.page.get_by_role("textbox", name="API token").fill(user.token)
        await self.page.get_by_role("button", name="Sign in").click()
        await expect(self.page.get_by_role("button", name="Sign out")).to_be_visible()

    async def send(self, text: str) -> None:
        box = self.page.get_by_role("textbox", name="Message")
        await box.fill(text)
        await box.press("Enter")

    async def new_chat(self, agent: str | None, text: str) -> None:
        await self.page.get_by_role("button", name="New chat").click()
        if agent is not None:
            await self.page.get_by_role("combobox", name="Agent").select_option(agent)
        await self.send(text)
        await expect(self.page).to_have_url(SESSION_URL)  # the first message created the session

    def log(self) -> Locator:
        return self.page.get_by_role("log", name="Conversation")

    def articles(self, role: str) -> Locator:
        return self.log().get_by_role("article", name=role, exact=True)

    def session_id(self) -> str:
        found = SESSION_URL.search(self.page.url)
        assert found is not None, self.page.url
        return found.group(1)


SESSION_URL = re.compile(r"#/s/([0-9a-f-]{36})$")


OpenPage = Callable[..., Awaitable[ChatPage]]


@pytest.fixture
async def open_page(browser: Browser, chat_server: Server) -> AsyncIterator[OpenPage]:
    """Opens chat pages (each in its own browser context, on `server` or the suite's, signed in as
    `user` if given), checked when the test ends."""
    opened: list[ChatPage] = []

    async def open_one(
        user: ApiUser | None = None,
        *,
        server: Server | None = None,
        bypass_csp: bool = False,
        width: int = 1200,
        height: int = 800,
    ) -> ChatPage:
        server = server or chat_server
        context = await browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=bypass_csp, base_url=server.url
        )
        context.set_default_timeout(WAIT_MS)
        page = await context.new_page()
        chat = ChatPage(page, server)

        async def record(route: Route) -> None:
            chat.hosts.add(urlsplit(route.request.url).netloc)
            if urlsplit(route.request.url).netloc == f"127.0.0.1:{server.port}":
                await route.continue_()
            else:
                await route.abort()

        await context.route("**/*", record)
        page.on("websocket", lambda ws: chat.hosts.add(urlsplit(ws.url).netloc))
        page.on("pageerror", lambda error: chat.errors.append(str(error)))
        await page.add_init_script(XSS_TRAP)
        await page.goto("/")
        opened.append(chat)
        if user is not None:
            await chat.sign_in(user)
        return chat

    yield open_one
    try:
        for chat in opened:
            assert chat.hosts <= {f"127.0.0.1:{chat.server.port}"}, f"requests to other hosts: {chat.hosts}"
            assert await chat.page.evaluate("window.__xss") is None, "script from a message ran"
            assert chat.errors == [], f"uncaught errors in the page: {chat.errors}"
    finally:
        for chat in opened:
            await chat.page.context.close()
