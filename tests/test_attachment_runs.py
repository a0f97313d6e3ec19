"""Attachments sent with messages: what the model receives (now and from history) and what is stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    TextContent,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo

from tests.attachment_turns import (
    EDIT,
    REGENERATE,
    SEND,
    VIEW,
    agent_for,
    describe,
    digest,
    dump,
    new_session,
    prompt_items,
    reporter,
    send,
)
from tests.conftest import Api, subscription
from tests.scripted import Recorder, register
from tests.uploads import pdf, png, png_of_size, upload
from tests.wsclient import SubscriptionError


async def test_images_and_pdfs_reach_the_model_as_binary_and_text_files_as_text(api: Api, admin: Api) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    image, paper = png(), pdf()
    uploaded = [
        await upload(api, "pixel.png", image),
        await upload(api, "paper.pdf", paper),
        await upload(api, "notes.md", b"# Notes\n\nBuy milk.\n"),
    ]
    ids = [a["id"] for a in uploaded]
    turn = await send(api, session, "What are these?", *ids)
    assert turn["userMessage"]["content"] == "What are these?"
    assert turn["userMessage"]["attachments"] == uploaded  # in the order given
    assert turn["reply"]["content"] == (
        f"text What are these? | binary image/png {len(image)} {digest(image)} | "
        f"binary application/pdf {len(paper)} {digest(paper)} | "
        'file <file name="notes.md" type="text/markdown">'
    )
    items = prompt_items(recorder.requests[-1])
    assert [type(i).__name__ for i in items] == ["str", "BinaryImage", "BinaryContent", "TextContent"]
    assert items[1].data == image and items[1].identifier == ids[0]
    assert items[2].data == paper and items[2].media_type == "application/pdf"
    assert items[3].content == '<file name="notes.md" type="text/markdown">\n# Notes\n\nBuy milk.\n\n</file>'
    # Listing messages shows the references, never the bytes.
    view = (await api.gql(VIEW, {"s": session}))["session"]
    nodes = [e["node"] for e in view["messages"]["edges"]]
    assert nodes[0]["attachments"] == uploaded and nodes[1]["attachments"] == []


async def test_history_round_trip_holds_references_and_sends_the_bytes(
    api: Api, admin: Api, sql: Any
) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    image = png(16, 16, noise=True)
    picture = await upload(api, "shot.png", image)
    note = await upload(api, "todo.txt", "ünïcode to-do\n".encode())
    first = await send(api, session, "look", picture["id"], note["id"])
    await send(api, session, "and what did I send before?")
    # The next turn's history carries the first turn's files, as the first turn sent them.
    history_items = prompt_items(recorder.requests[-1][:1])
    assert isinstance(history_items[1], BinaryContent) and history_items[1].data == image
    assert isinstance(history_items[2], TextContent) and "ünïcode to-do" in history_items[2].content
    assert dump(recorder.requests[-1][:1]) == dump(recorder.requests[-2][:1])
    # Session.history is what the model was sent (bytes as pydantic-ai's base64 JSON) ...
    history = (await api.gql(VIEW, {"s": session}))["session"]["history"]
    assert dump(recorder.requests[-1]) == history[:-1]
    # ... while the stored row holds references only.
    stored = await sql.fetchval(
        "SELECT model_message FROM messages WHERE id = $1", uuid.UUID(first["userMessage"]["id"])
    )
    content = json.loads(stored)["parts"][0]["content"]
    assert content[0] == "look"
    assert content[1] == {
        "data": "",
        "media_type": "image/png",
        "vendor_metadata": None,
        "kind": "binary",
        "identifier": picture["id"],
    }
    assert content[2] == {
        "content": "",
        "metadata": {"parley_attachment": note["id"]},
        "kind": "text-content",
    }
    assert history[0]["parts"][0]["content"][1]["data"] == history_items[1].base64.replace("+", "-").replace(
        "/", "_"
    )


async def test_regenerate_and_edit_send_the_right_files(api: Api, admin: Api) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    one, two = png(4, 4), png(5, 5)
    first = await upload(api, "one.png", one)
    second = await upload(api, "two.png", two)
    turn = await send(api, session, "describe", first["id"])
    again = (await api.gql(REGENERATE, {"m": turn["reply"]["id"]}))["regenerate"]
    assert again["reply"]["content"] == turn["reply"]["content"]
    assert again["userMessage"]["attachments"][0]["id"] == first["id"]
    edited = (await api.gql(EDIT, {"m": turn["userMessage"]["id"], "c": "this one", "a": [second["id"]]}))[
        "editMessage"
    ]
    assert edited["userMessage"]["attachments"] == [second]
    assert edited["reply"]["content"] == f"text this one | binary image/png {len(two)} {digest(two)}"
    plain = (await api.gql(EDIT, {"m": turn["userMessage"]["id"], "c": "no file now", "a": None}))[
        "editMessage"
    ]
    assert plain["userMessage"]["attachments"] == [] and plain["reply"]["content"] == "text no file now"


async def test_a_picture_alone_is_a_message(api: Api, admin: Api) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    image = png()
    picture = await upload(api, "p.png", image)
    turn = await send(api, session, "", picture["id"])
    assert turn["reply"]["content"] == f"binary image/png {len(image)} {digest(image)}"
    # Without attachments, empty content is refused as before.
    assert await api.code(SEND, {"s": session, "c": " ", "a": []}) == "BAD_USER_INPUT"


async def test_someone_elses_or_a_missing_attachment_is_not_found(
    api: Api, other: Api, admin: Api, schema: Any
) -> None:
    session = await new_session(api, await agent_for(admin, Recorder()))
    mine = await upload(api, "mine.png", png())
    theirs = await upload(other, "theirs.png", png())
    for ids in ([theirs["id"]], [mine["id"], theirs["id"]], [str(uuid.uuid4())]):
        assert await api.code(SEND, {"s": session, "c": "hi", "a": ids}) == "NOT_FOUND"
    turn = await send(api, session, "hi", mine["id"])
    edit = {"m": turn["userMessage"]["id"], "c": "hi", "a": [theirs["id"]]}
    assert await api.code(EDIT, edit) == "NOT_FOUND"
    # Nothing was stored for the refused messages.
    assert (await api.gql(VIEW, {"s": session}))["session"]["messageCount"] == 2
    # Their owner still has it, unreferenced.
    assert (
        await other.client.get(theirs["url"], headers={"Authorization": f"Bearer {other.token}"})
    ).status_code == 200
    # The subscription refuses it the same way.
    query = 'subscription($s: UUID!, $a: [UUID!]) { chat(sessionId: $s, content: "x", attachments: $a) { __typename } }'
    with pytest.raises(SubscriptionError) as refused:
        async with subscription(
            schema, api.rt, api.token or "", query, {"s": session, "a": [theirs["id"]]}
        ) as events:
            async for _ in events:
                pass
    assert refused.value.code == "NOT_FOUND"


async def test_at_most_ten_distinct_attachments(api: Api, admin: Api) -> None:
    session = await new_session(api, await agent_for(admin, Recorder()))
    ids = [(await upload(api, f"{i}.txt", b"x"))["id"] for i in range(11)]
    assert await api.code(SEND, {"s": session, "c": "hi", "a": ids}) == "BAD_USER_INPUT"
    assert await api.code(SEND, {"s": session, "c": "hi", "a": [ids[0], ids[0]]}) == "BAD_USER_INPUT"
    turn = await send(api, session, "ten", *ids[:10])
    assert [a["id"] for a in turn["userMessage"]["attachments"]] == ids[:10]


async def test_a_5_mib_image_keeps_the_stored_rows_small(api: Api, admin: Api, sql: Any) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    big = png_of_size(5 * 1024 * 1024)
    picture = await upload(api, "big.png", big)
    await send(api, session, "a big picture", picture["id"])
    await send(api, session, "still there?")
    assert prompt_items(recorder.requests[-1][:1])[1].data == big  # sent again, from the reference
    rows = await sql.fetch(
        "SELECT role, octet_length(model_message) AS size FROM messages WHERE session_id = $1 ORDER BY sequence",
        uuid.UUID(session),
    )
    stored = [r["size"] for r in rows]
    history = (await api.gql(VIEW, {"s": session}))["session"]["history"]
    # Without references each row would hold its message as Session.history shows it.
    inline = [len(json.dumps(m, separators=(",", ":"), ensure_ascii=False)) for m in history]
    print(f"\nstored model_message bytes per row, with references: {stored} (total {sum(stored)})")
    print(f"the same rows with the image inline (base64): {inline} (total {sum(inline)})")
    assert max(stored) < 1024
    assert inline[0] > len(big) * 4 // 3
    stored_bytes = await sql.fetchval(
        "SELECT octet_length(data) FROM attachment_data WHERE id = $1", uuid.UUID(picture["id"])
    )
    assert stored_bytes == len(big)  # the bytes once, in their own table


async def test_chat_streams_a_message_with_its_attachments(api: Api, admin: Api, schema: Any) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    picture = await upload(api, "p.png", png())
    query = """subscription($s: UUID!, $a: [UUID!]) { chat(sessionId: $s, content: "see", attachments: $a) {
      __typename ... on MessageAdded { message { role attachments { id mediaType } } }
      ... on RunFinished { run { status reply { content } } } } }"""
    seen = []
    async with subscription(
        schema, api.rt, api.token or "", query, {"s": session, "a": [picture["id"]]}
    ) as events:
        async for event in events:
            seen.append(event)
    added = [e["message"] for e in seen if e["__typename"] == "MessageAdded"]
    assert added[0] == {"role": "USER", "attachments": [{"id": picture["id"], "mediaType": "image/png"}]}
    assert seen[-1]["run"]["status"] == "COMPLETED"
    assert seen[-1]["run"]["reply"]["content"].startswith("text see | binary image/png")


async def test_the_echo_model_names_the_attachments(api: Api) -> None:
    session = await new_session(api)  # the default agent: echo
    picture = await upload(api, "p.png", png())
    note = await upload(api, "n.txt", b"hello")
    turn = await send(api, session, "look", picture["id"], note["id"])
    assert turn["reply"]["content"] == "look [image/png] [file]"
    alone = await send(api, session, "", picture["id"])
    assert alone["reply"]["content"] == "[image/png]"


async def test_after_a_failed_turn_the_stored_rows_still_hold_references(
    api: Api, admin: Api, sql: Any
) -> None:
    recorder = Recorder()
    calls = 0

    async def fails_once(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the model broke")
        async for text in reporter(messages, info):
            yield text

    name = f"att-{uuid.uuid4().hex[:8]}"
    model = register(admin.rt.models, fails_once, recorder)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False}},
    )
    session = await new_session(api, name)
    first, second = png(30, 30, noise=True, seed=3), png(30, 30, noise=True, seed=4)
    a = await upload(api, "a.png", first)
    b = await upload(api, "b.png", second)
    failed = (await api.gql(SEND, {"s": session, "c": "one", "a": [a["id"]]}))["sendMessage"]
    assert failed["run"]["status"] == "FAILED"
    await send(api, session, "two", b["id"])
    # pydantic-ai sends the unanswered request and the new one merged: both images go.
    sent = [
        describe(item)
        for m in recorder.requests[-1]
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart) and not isinstance(p.content, str)
        for item in p.content
    ]
    assert sent == [
        "text one",
        f"binary image/png {len(first)} {digest(first)}",
        "text two",
        f"binary image/png {len(second)} {digest(second)}",
    ]
    sizes = await sql.fetch(
        "SELECT octet_length(model_message) AS size FROM messages WHERE session_id = $1", uuid.UUID(session)
    )
    assert max(r["size"] for r in sizes) < 2048  # no base64 in any row
    # Session.history keeps the two requests apart, each with its image.
    history = ModelMessagesTypeAdapter.validate_python(
        (await api.gql(VIEW, {"s": session}))["session"]["history"]
    )
    assert [prompt_items([m])[1].data for m in history[:2]] == [first, second]
