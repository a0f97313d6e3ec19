"""Attachments sent with messages: what the model receives, what is stored, and their lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
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

from services import retention, users
from tests.conftest import Api, subscription
from tests.scripted import Recorder, register
from tests.uploads import pdf, png, png_of_size, upload
from tests.wsclient import SubscriptionError

ATTACHMENT = "id filename mediaType size url createdAt"
PAYLOAD = f"""run {{ id status error {{ code message }} }}
  userMessage {{ id content attachments {{ {ATTACHMENT} }} }}
  reply {{ id content }}"""
SEND = f"""mutation($s: UUID!, $c: String!, $a: [UUID!]) {{
  sendMessage(sessionId: $s, content: $c, attachments: $a) {{ {PAYLOAD} }} }}"""
EDIT = f"""mutation($m: UUID!, $c: String!, $a: [UUID!]) {{
  editMessage(messageId: $m, content: $c, attachments: $a) {{ {PAYLOAD} }} }}"""
REGENERATE = f"mutation($m: UUID!) {{ regenerate(messageId: $m) {{ {PAYLOAD} }} }}"
VIEW = f"""query($s: UUID!) {{ session(id: $s) {{ messageCount history
  messages(first: 50) {{ edges {{ node {{ role content attachments {{ {ATTACHMENT} }} }} }} }} }} }}"""
FORK = "mutation($m: UUID!) { forkSession(messageId: $m) { id } }"
DELETE = "mutation($s: UUID!) { deleteSession(id: $s) }"
CLEAR = "mutation($s: UUID!) { clearSessionHistory(id: $s) { messageCount } }"


def prompt_items(messages: list[ModelMessage]) -> list[Any]:
    """The items of the newest user prompt the model was sent."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    return [part.content] if isinstance(part.content, str) else list(part.content)
    return []


def describe(item: Any) -> str:
    if isinstance(item, str):
        return f"text {item}"
    if isinstance(item, BinaryContent):
        return f"binary {item.media_type} {len(item.data)} {hashlib.sha256(item.data).hexdigest()[:12]}"
    if isinstance(item, TextContent):
        return f"file {item.content.splitlines()[0]}"
    return type(item).__name__


async def reporter(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    """A model that says which parts its newest user prompt had."""
    yield " | ".join(describe(i) for i in prompt_items(messages))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


async def agent_for(admin: Api, recorder: Recorder) -> str:
    name = f"att-{uuid.uuid4().hex[:8]}"
    model = register(admin.runtime.models, reporter, recorder)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False}},
    )
    return name


async def new_session(api: Api, agent: str | None = None) -> str:
    data = await api.gql(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }", {"i": {"agentName": agent}}
    )
    session_id: str = data["createSession"]["id"]
    return session_id


async def send(api: Api, session: str, content: str, *attachments: str) -> dict[str, Any]:
    data = await api.gql(SEND, {"s": session, "c": content, "a": list(attachments)})
    turn: dict[str, Any] = data["sendMessage"]
    assert turn["run"]["status"] == "COMPLETED", turn["run"]
    return turn


def dump(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    dumped: list[dict[str, Any]] = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return dumped


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
            schema, api.runtime, api.token or "", query, {"s": session, "a": [theirs["id"]]}
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


async def test_a_fork_shares_attachments_and_deleting_sessions_deletes_only_theirs(
    api: Api, admin: Api, sql: Any
) -> None:
    recorder = Recorder()
    agent = await agent_for(admin, recorder)
    source, other_session = await new_session(api, agent), await new_session(api, agent)
    only_here = await upload(api, "only.png", png(3, 3))
    shared = await upload(api, "shared.png", png(6, 6))
    pending = await upload(api, "pending.txt", b"not sent yet")
    turn = await send(api, source, "two files", only_here["id"], shared["id"])
    await send(api, other_session, "one of them", shared["id"])
    fork = (await api.gql(FORK, {"m": turn["reply"]["id"]}))["forkSession"]["id"]
    forked = (await api.gql(VIEW, {"s": fork}))["session"]
    assert forked["messages"]["edges"][0]["node"]["attachments"] == [only_here, shared]
    # The fork's runs send the files too (its history refers to the same attachments).
    await send(api, fork, "in the fork")
    assert prompt_items(recorder.requests[-1][:1])[1].data == png(3, 3)

    assert (await api.gql(DELETE, {"s": source}))["deleteSession"] is True
    left = {
        str(r["id"])
        for r in await sql.fetch(
            "SELECT id FROM attachments WHERE user_id = (SELECT user_id FROM attachments WHERE id = $1)",
            uuid.UUID(pending["id"]),
        )
    }
    assert left == {only_here["id"], shared["id"], pending["id"]}  # the fork still refers to both

    assert (await api.gql(DELETE, {"s": fork}))["deleteSession"] is True
    gone = await api.client.get(only_here["url"], headers={"Authorization": f"Bearer {api.token}"})
    assert gone.status_code == 404
    assert (
        await sql.fetchval("SELECT count(*) FROM attachment_data WHERE id = $1", uuid.UUID(only_here["id"]))
        == 0
    )
    kept = await api.client.get(shared["url"], headers={"Authorization": f"Bearer {api.token}"})
    assert kept.status_code == 200  # other_session refers to it
    # An upload no message refers to is retention's business, not deleteSession's.
    assert (
        await api.client.get(pending["url"], headers={"Authorization": f"Bearer {api.token}"})
    ).status_code == 200


async def _age(sql: Any, attachment_id: str, days: float) -> None:
    await sql.execute(
        "UPDATE attachments SET unreferenced_since = now() - make_interval(days => $2) WHERE id = $1",
        uuid.UUID(attachment_id),
        days,
    )


async def test_retention_deletes_attachments_unreferenced_for_a_day(api: Api, admin: Api, sql: Any) -> None:
    session = await new_session(api, await agent_for(admin, Recorder()))
    orphan = await upload(api, "orphan.txt", b"never sent")
    fresh = await upload(api, "fresh.txt", b"uploaded just now")
    sent = await upload(api, "sent.png", png())
    cleared = await upload(api, "cleared.png", png(2, 2))
    await send(api, session, "with a file", sent["id"], cleared["id"])
    await _age(sql, orphan["id"], 1.01)
    # A referenced attachment carries no mark, however old it is.
    assert (
        await sql.fetchval("SELECT unreferenced_since FROM attachments WHERE id = $1", uuid.UUID(sent["id"]))
        is None
    )

    assert (await retention.sweep_attachments()) is not None
    present = {
        str(r["id"])
        for r in await sql.fetch(
            "SELECT id FROM attachments WHERE id = ANY($1::uuid[])",
            [uuid.UUID(a["id"]) for a in (orphan, fresh, sent, cleared)],
        )
    }
    assert present == {fresh["id"], sent["id"], cleared["id"]}

    # Clearing the history lets go of them: unreferenced from now on, deleted a day later.
    await api.gql(CLEAR, {"s": session})
    since = await sql.fetchval(
        "SELECT unreferenced_since FROM attachments WHERE id = $1", uuid.UUID(sent["id"])
    )
    assert since is not None
    await retention.sweep_attachments()
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(sent["id"])) == 1
    await _age(sql, sent["id"], 2)
    await retention.sweep_attachments()
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(sent["id"])) == 0
    assert (
        await sql.fetchval("SELECT count(*) FROM attachment_data WHERE id = $1", uuid.UUID(sent["id"])) == 0
    )

    # A claimed attachment is referenced again: the sweep leaves it alone.
    session_2 = await new_session(api, await agent_for(admin, Recorder()))
    await _age(sql, cleared["id"], 3)
    await send(api, session_2, "again", cleared["id"])
    await retention.sweep_attachments()
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(cleared["id"])) == 1


async def test_references_gone_another_way_are_noticed_by_the_sweep(api: Api, admin: Api, sql: Any) -> None:
    session = await new_session(api, await agent_for(admin, Recorder()))
    picture = await upload(api, "p.png", png())
    turn = await send(api, session, "hi", picture["id"])
    # As if a message had gone by a path that does not mark its attachments.
    await sql.execute("DELETE FROM messages WHERE id = $1", uuid.UUID(turn["userMessage"]["id"]))
    await retention.sweep_attachments()
    assert (
        await sql.fetchval(
            "SELECT unreferenced_since FROM attachments WHERE id = $1", uuid.UUID(picture["id"])
        )
        is not None
    )


async def test_deleting_a_user_deletes_their_attachments(make_api: Any, admin: Api, sql: Any) -> None:
    gone = await make_api()
    session = await new_session(gone, await agent_for(admin, Recorder()))
    sent = await upload(gone, "sent.png", png())
    kept = await upload(gone, "kept.txt", b"not sent")
    await send(gone, session, "hi", sent["id"])
    await users.delete_user(gone.name)
    ids = [uuid.UUID(sent["id"]), uuid.UUID(kept["id"])]
    assert await sql.fetchval("SELECT count(*) FROM attachments WHERE id = ANY($1::uuid[])", ids) == 0
    assert await sql.fetchval("SELECT count(*) FROM attachment_data WHERE id = ANY($1::uuid[])", ids) == 0


async def test_chat_streams_a_message_with_its_attachments(api: Api, admin: Api, schema: Any) -> None:
    recorder = Recorder()
    session = await new_session(api, await agent_for(admin, recorder))
    picture = await upload(api, "p.png", png())
    query = """subscription($s: UUID!, $a: [UUID!]) { chat(sessionId: $s, content: "see", attachments: $a) {
      __typename ... on MessageAdded { message { role attachments { id mediaType } } }
      ... on RunFinished { run { status reply { content } } } } }"""
    seen = []
    async with subscription(
        schema, api.runtime, api.token or "", query, {"s": session, "a": [picture["id"]]}
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
    model = register(admin.runtime.models, fails_once, recorder)
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


async def test_a_claim_racing_a_deletion_never_leaves_a_dangling_reference(
    api: Api, admin: Api, sql: Any
) -> None:
    agent = await agent_for(admin, Recorder())
    for round_ in range(6):
        source, target = await new_session(api, agent), await new_session(api, agent)
        picture = await upload(api, f"race-{round_}.png", png(2 + round_, 2))
        await send(api, source, "first", picture["id"])
        deleted, sent = await asyncio.gather(
            api.post(DELETE, {"s": source}),
            api.post(SEND, {"s": target, "c": "second", "a": [picture["id"]]}),
        )
        assert deleted.json()["data"]["deleteSession"] is True
        body = sent.json()
        exists = await sql.fetchval(
            "SELECT count(*) FROM attachments WHERE id = $1", uuid.UUID(picture["id"])
        )
        if body.get("errors"):  # the deletion went first: the attachment is gone, nothing was stored
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            assert exists == 0
            assert (await api.gql(VIEW, {"s": target}))["session"]["messageCount"] == 0
        else:  # the claim went first: the other session keeps it
            assert body["data"]["sendMessage"]["run"]["status"] == "COMPLETED"
            assert exists == 1
