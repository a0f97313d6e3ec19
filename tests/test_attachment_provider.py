"""Attachments on the real provider path: what an OpenAI-compatible server is sent, in this turn and later."""

from __future__ import annotations

import base64
from typing import Any

from tests.conftest import Api
from tests.fake_openai import FakeOpenAI, Text
from tests.test_provider import fake, fake_server, make_agent, new_session
from tests.uploads import pdf, png, upload

__all__ = ["fake", "fake_server"]  # the provider tests' fixtures, used here too

SEND = """mutation($s: UUID!, $c: String!, $a: [UUID!]) {
  sendMessage(sessionId: $s, content: $c, attachments: $a) { run { status error { code message } } reply { content } } }"""


def user_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    assert message["role"] == "user"
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


async def test_the_provider_is_sent_the_files_now_and_in_later_turns(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin))
    image, paper = png(), pdf()
    ids = [
        (await upload(api, "pixel.png", image))["id"],
        (await upload(api, "paper.pdf", paper))["id"],
        (await upload(api, "rows.csv", b"a,b\n1,2\n"))["id"],
    ]
    fake.script(Text("I see them"), Text("Yes, still"))
    first = await api.gql(SEND, {"s": session, "c": "What are these?", "a": ids})
    assert first["sendMessage"]["run"]["status"] == "COMPLETED", first
    second = await api.gql(SEND, {"s": session, "c": "Still there?", "a": []})
    assert second["sendMessage"]["reply"]["content"] == "Yes, still"

    sent_now = user_parts(fake.requests[0].messages[-1])
    sent_later = user_parts(next(m for m in fake.requests[1].messages if m["role"] == "user"))
    for parts in (sent_now, sent_later):
        text, picture, document, table = parts
        assert text == {"type": "text", "text": "What are these?"}
        assert picture["type"] == "image_url"
        assert picture["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(image).decode()
        assert document["type"] == "file"
        assert (
            document["file"]["file_data"] == "data:application/pdf;base64," + base64.b64encode(paper).decode()
        )
        assert table == {
            "type": "text",
            "text": '<file name="rows.csv" type="text/csv">\na,b\n1,2\n\n</file>',
        }
    assert fake.requests[1].messages[-1] == {"role": "user", "content": "Still there?"}
