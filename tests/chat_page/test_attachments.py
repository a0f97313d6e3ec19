"""Files in the chat page: picked, pasted or dropped, uploaded at once (the GraphQL multipart
request spec) with a preview, sent with the message, shown in it (a thumbnail, or a download),
and given to the model: `script:sees` says what the prompt brought it."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path

from playwright.async_api import FilePayload, Locator, Page, expect

from tests.chat_page.conftest import ApiUser, ChatPage, OpenPage, gql, make_agent
from tests.servers import Server

ATTACHMENTS = """query($s: UUID!) { session(id: $s) {
  messages(last: 2) { edges { node { role attachments { filename mediaType size } } } } } }"""


def png(width: int, height: int) -> bytes:
    """A real PNG (a red picture) of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png(4, 3)
Files = list[tuple[str, str, bytes]]  # name, declared type, bytes

# A DataTransfer holding the files, made in the page (as a drag from the desktop or a copy would).
MAKE_TRANSFER = """(files) => {
  const transfer = new DataTransfer();
  for (const [name, type, data] of files) {
    transfer.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, { type }));
  }
  return transfer;
}"""


def encoded(files: Files) -> list[list[str]]:
    return [[name, kind, base64.b64encode(data).decode()] for name, kind, data in files]


async def drop(target: Locator, files: Files) -> None:
    """Drags the files onto the element and drops them there."""
    transfer = await target.page.evaluate_handle(MAKE_TRANSFER, encoded(files))
    for event in ("dragenter", "dragover", "drop"):
        await target.dispatch_event(event, {"dataTransfer": transfer})


async def paste(target: Locator, files: Files) -> None:
    """Pastes the files into the element, as from the clipboard."""
    await target.evaluate(
        f"""(element, files) => element.dispatchEvent(new ClipboardEvent("paste",
              {{ clipboardData: ({MAKE_TRANSFER})(files), bubbles: true, cancelable: true }}))""",
        encoded(files),
    )


async def expect_picture(image: Locator, width: int = 4) -> None:
    """The image shows the picture (its bytes arrived), through an object URL."""
    await expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    await expect(image).to_have_js_property("naturalWidth", width)


def chips(page: Page) -> Locator:
    return page.get_by_role("list", name="Files to send")


async def new_chat_with(chat: ChatPage, agent: str) -> None:
    await chat.page.get_by_role("button", name="New chat").click()
    await chat.page.get_by_role("combobox", name="Agent").select_option(agent)


async def test_a_picked_image_is_previewed_sent_shown_and_seen_by_the_model(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server
) -> None:
    agent = await make_agent(chat_server, admin, "script:sees")
    chat = await open_page(api)
    await new_chat_with(chat, agent)
    async with chat.page.expect_file_chooser() as chooser:
        await chat.page.get_by_role("button", name="Attach files").click()
    picked: FilePayload = {"name": "dot.png", "mimeType": "image/png", "buffer": PICTURE}
    await (await chooser.value).set_files([picked])

    await expect_picture(chips(chat.page).get_by_role("img", name="Preview of dot.png"))  # the local file
    await expect(chips(chat.page)).to_contain_text(f"{len(PICTURE)} B")  # uploaded
    await chat.send("what is this?")

    user = chat.articles("user")
    await expect(chat.articles("assistant").locator(".markdown")).to_have_text(
        f"said: what is this?; got image/png ({len(PICTURE)} bytes)"  # the bytes themselves reached it
    )
    await expect_picture(user.get_by_role("img", name="dot.png"))
    await expect(user.locator(".text")).to_have_text("what is this?")
    await expect(chips(chat.page)).to_have_count(0)
    stored = await gql(chat_server, api.token, ATTACHMENTS, {"s": chat.session_id()})
    first = stored["session"]["messages"]["edges"][0]["node"]
    assert first == {
        "role": "USER",
        "attachments": [{"filename": "dot.png", "mediaType": "image/png", "size": len(PICTURE)}],
    }

    await chat.page.reload()  # the thumbnail now comes from GET /attachments/{id}, with the token
    await expect_picture(chat.articles("user").get_by_role("img", name="dot.png"))


async def test_refused_pasted_and_dropped_files_a_file_alone_is_a_download_and_an_edit_keeps_files(
    open_page: OpenPage, api: ApiUser, admin: ApiUser, chat_server: Server, tmp_path: Path
) -> None:
    agent = await make_agent(chat_server, admin, "script:sees")
    chat = await open_page(api)
    await new_chat_with(chat, agent)
    box = chat.page.get_by_role("textbox", name="Message")

    await drop(chat.log(), [("tool.exe", "application/x-msdownload", b"MZ\x90\x00" + bytes(60))])
    refused = chat.page.get_by_role("alert").filter(
        has_text="“tool.exe” was not attached: unsupported file type"
    )
    await expect(refused).to_be_visible()
    await expect(chips(chat.page)).to_have_count(0)

    await paste(box, [("image.png", "image/png", PICTURE)])  # a picture copied to the clipboard
    await expect_picture(chips(chat.page).get_by_role("img", name="Preview of image.png"))
    await chips(chat.page).get_by_role("button", name="Remove image.png").click()
    await expect(chips(chat.page)).to_have_count(0)
    await expect(chat.page.get_by_role("button", name="Send")).to_be_disabled()  # nothing to send

    notes = b"# Plan\nship it"
    await drop(box, [("notes.md", "text/markdown", notes)])
    await expect(chips(chat.page)).to_contain_text(f"notes.md{len(notes)} B")
    await chat.page.get_by_role("button", name="Send").click()  # a file alone, without words

    reply = chat.articles("assistant")
    await expect(reply.locator(".markdown")).to_have_text("got notes.md (text/markdown): # Plan ship it")
    download = chat.articles("user").get_by_role("button", name=re.compile(r"notes\.md"))
    async with chat.page.expect_download() as downloading:
        await download.click()
    saved = await downloading.value
    assert saved.suggested_filename == "notes.md"
    await saved.save_as(tmp_path / "notes.md")
    assert (tmp_path / "notes.md").read_bytes() == notes

    # An edit starts with the message's files; a picture dropped on the editor joins them.
    await chat.articles("user").get_by_role("button", name="Edit").click()
    editing = chat.articles("user").get_by_role("list", name="Files to send")
    await expect(editing).to_contain_text("notes.md")
    await drop(
        chat.articles("user").get_by_role("textbox", name="Edited text"), [("dot.png", "image/png", PICTURE)]
    )
    await expect_picture(editing.get_by_role("img", name="Preview of dot.png"))
    await expect(chips(chat.page)).to_have_count(1)  # the editor's: the message box got nothing
    await expect(editing).to_contain_text(f"dot.png{len(PICTURE)} B")
    await chat.articles("user").get_by_role("button", name="Send").click()
    await expect(reply.locator(".markdown")).to_have_text(
        f"got notes.md (text/markdown): # Plan ship it; got image/png ({len(PICTURE)} bytes)"
    )
    await expect(chat.articles("user").get_by_role("group", name="Branch")).to_contain_text("2/2")
    await expect_picture(chat.articles("user").get_by_role("img", name="dot.png"))
