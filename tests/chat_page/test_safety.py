"""Untrusted text in the chat page, the page's own fences, its assets, and the README screenshot."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from playwright.async_api import expect

from tests.chat_page.conftest import ApiUser, ChatPage, OpenPage, gql, make_agent
from tests.servers import ROOT, Server

USER_XSS = (
    "<img src=x onerror=\"window.__xss='user img'\"> <script>window.__xss='user script'</script> "
    "[link](javascript:window.__xss='user%20link') <b onmouseover=\"window.__xss='hover'\">bold</b>"
)

# Structural checks: whatever the browser would allow, none of this may be in the conversation.
DANGEROUS = """() => {
  const log = document.querySelector("[role=log]");
  const found = [];
  for (const el of log.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      if (attr.name.startsWith("on")) found.push(`${el.tagName} ${attr.name}`);
      if (/^\\s*javascript:/i.test(attr.value)) found.push(`${el.tagName} ${attr.name}=${attr.value}`);
    }
    if (["SCRIPT", "IFRAME", "SVG", "FORM", "STYLE", "OBJECT", "EMBED"].includes(el.tagName)) found.push(el.tagName);
  }
  for (const a of log.querySelectorAll(".markdown a[href]")) {
    if (a.rel !== "noopener noreferrer" || a.target !== "_blank") found.push(`unsafe link ${a.href}`);
  }
  return found;
}"""


async def assert_nothing_ran(chat: ChatPage) -> None:
    assert await chat.page.evaluate("window.__xss") is None
    assert await chat.page.evaluate(DANGEROUS) == []


async def test_script_in_user_and_model_text_never_runs_even_without_the_csp(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    # Without the page's Content-Security-Policy only the sanitizer stands between text and DOM.
    chat = await open_page(api, bypass_csp=True)
    await chat.new_chat(None, USER_XSS)  # the echo model repeats it as its own markdown
    await expect(chat.articles("assistant")).to_contain_text("bold")
    await expect(chat.articles("user").locator(".text")).to_have_text(USER_XSS)  # shown as typed
    await chat.articles("assistant").get_by_text("bold").hover()
    await chat.articles("assistant").get_by_text("link", exact=True).click()  # its href is gone
    await assert_nothing_ran(chat)

    agent = await make_agent(chat_server, admin, "script:xss")
    await chat.new_chat(agent, "show me some links")
    reply = chat.articles("assistant").last
    await expect(reply).to_contain_text("a normal link")
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)
    await reply.get_by_text("raw link").click()
    await reply.get_by_text("s", exact=True).click()  # toggles the <details>
    await assert_nothing_ran(chat)
    # An image from another host would leak through its URL: it is a link instead (and the
    # page fixture checks that no request went to evil.test).
    await expect(reply.get_by_role("link", name="[image: leak]")).to_have_attribute(
        "href", "http://evil.test/pixel.png?secret=1"
    )
    await expect(reply.locator("img[src*=evil]")).to_have_count(0)
    await expect(reply.locator("pre")).to_have_text("not <b>html</b> here\n")


async def test_the_page_is_served_with_a_strict_policy_and_only_local_assets(chat_server: Server) -> None:
    async with httpx.AsyncClient(base_url=chat_server.url) as client:
        page = await client.get("/")
        policy = page.headers["content-security-policy"]
        assert page.status_code == 200 and '<script type="importmap">' in page.text
        assert "default-src 'none'" in policy and "script-src 'self' 'sha256-" in policy
        assert "unsafe-inline" not in policy and "img-src 'self' data: blob:" in policy
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing from another host
        module = await client.get("/chat/vendor/graphql-ws/client.js")
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")


async def test_code_blocks_copy_and_the_readme_screenshot(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server, tmp_path: Path
) -> None:
    agent = await make_agent(chat_server, admin, "script:demo")
    for title in ("Release notes for 0.2", "Why is this query slow?"):  # company in the list
        await gql(
            chat_server,
            api.token,
            "mutation($t: String) { createSession(input: {title: $t}) { id } }",
            {"t": title},
        )
    chat = await open_page(width=1200, height=760)
    await chat.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=chat_server.url)
    await chat.sign_in(api)
    await chat.new_chat(agent, "How does a frontend stream a reply from Parley?")
    await expect(chat.articles("assistant").last).to_contain_text("no gap, no duplicate")
    await expect(chat.page.get_by_role("button", name="Stop")).to_have_count(0)

    await expect(chat.page.get_by_role("heading", name="How does a frontend stream")).to_be_visible()

    # PARLEY_SCREENSHOT=docs/chat.png pytest tests/chat_page -k screenshot  renews the README's picture.
    target = os.environ.get("PARLEY_SCREENSHOT")
    path = ROOT / target if target else tmp_path / "chat.png"
    await chat.page.screenshot(path=path)
    assert path.stat().st_size > 10_000

    copy = chat.log().get_by_role("button", name="Copy code")
    await copy.click()
    await expect(copy).to_have_text("Copied")
    copied = await chat.page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("const client = createClient(")
