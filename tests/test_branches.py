"""Branches (API.md section 6): edit, regenerate, switch branch, fork; the active branch everywhere."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from tests.conftest import Api, subscription
from tests.postgres import fresh_database
from tests.scripted import Recorder, last_user_text, register

PAYLOAD = """
  run { id status }
  userMessage { id sequence content parentId siblingIds siblingIndex }
  reply { id sequence content parentId siblingIds siblingIndex }
  messages { id sequence role }
"""
SEND = f"""mutation($s: UUID!, $c: String!, $k: String) {{
  sendMessage(sessionId: $s, content: $c, idempotencyKey: $k) {{ {PAYLOAD} }} }}"""
EDIT = f"""mutation($m: UUID!, $c: String!, $k: String) {{
  editMessage(messageId: $m, content: $c, idempotencyKey: $k) {{ {PAYLOAD} }} }}"""
REGENERATE = f"""mutation($m: UUID!, $k: String) {{
  regenerate(messageId: $m, idempotencyKey: $k) {{ {PAYLOAD} }} }}"""
SWITCH = "mutation($m: UUID!) { switchBranch(messageId: $m) { headMessageId messageCount } }"
FORK = """mutation($m: UUID!, $t: String) { forkSession(messageId: $m, title: $t) {
  id title state messageCount headMessageId forkedFrom { id content } memory { key value }
  agent { name } messages(first: 50) { edges { node { sequence content parentId role } } } } }"""
VIEW = """query($id: UUID!) { session(id: $id) {
  headMessageId messageCount history
  messages(first: 50) { totalCount edges { node { id sequence role content parentId siblingIds siblingIndex } } }
  stats { messageCount userMessages assistantMessages } } }"""


async def agent_with(admin: Api, recorder: Recorder | None = None, **options: Any) -> str:
    """An agent whose model answers 're: <the last user text>' (and records what it was sent)."""

    async def reply(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield f"re: {last_user_text(messages)}"

    name = f"b-{uuid.uuid4().hex[:8]}"
    model = register(admin.rt.models, reply, recorder)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False, **options}},
    )
    return name


async def new_session(api: Api, agent: str, **fields: Any) -> str:
    data = await api.gql(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
        {"i": {"agentName": agent, **fields}},
    )
    return str(data["createSession"]["id"])


async def view(api: Api, session_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await api.gql(VIEW, {"id": session_id}))["session"]
    return found


def contents(session: dict[str, Any]) -> list[str]:
    return [e["node"]["content"] for e in session["messages"]["edges"]]


def prompts(messages: list[ModelMessage]) -> list[str]:
    """Every user prompt and text reply the model was sent, in order."""
    out: list[str] = []
    for m in messages:
        for p in m.parts:
            if isinstance(m, ModelRequest) and isinstance(p, UserPromptPart) and isinstance(p.content, str):
                out.append(p.content)
            elif isinstance(m, ModelResponse) and isinstance(p, TextPart):
                out.append(p.content)
    return out


async def test_messages_chain_and_head(api: Api, admin: Api) -> None:
    sid = await new_session(api, await agent_with(admin))
    first = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    second = (await api.gql(SEND, {"s": sid, "c": "two"}))["sendMessage"]
    assert first["userMessage"]["parentId"] is None
    assert first["reply"]["parentId"] == first["userMessage"]["id"]
    assert second["userMessage"]["parentId"] == first["reply"]["id"]
    assert first["userMessage"]["siblingIds"] == [first["userMessage"]["id"]]
    assert first["userMessage"]["siblingIndex"] == 0
    s = await view(api, sid)
    assert s["headMessageId"] == second["reply"]["id"]
    assert s["messageCount"] == 4


async def test_edit_makes_a_sibling_and_the_model_sees_only_the_new_branch(api: Api, admin: Api) -> None:
    recorder = Recorder()
    sid = await new_session(api, await agent_with(admin, recorder))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    await api.gql(SEND, {"s": sid, "c": "two"})
    edited = (await api.gql(EDIT, {"m": one["userMessage"]["id"], "c": "uno"}))["editMessage"]

    assert edited["run"]["status"] == "COMPLETED"
    assert edited["reply"]["content"] == "re: uno"
    new_user = edited["userMessage"]
    assert new_user["parentId"] is None  # a sibling of the first message
    assert new_user["siblingIds"] == [one["userMessage"]["id"], new_user["id"]]
    assert new_user["siblingIndex"] == 1
    assert [m["role"] for m in edited["messages"]] == ["USER", "ASSISTANT"]
    # The model was sent the new message alone, none of the old branch.
    assert prompts(recorder.requests[-1]) == ["uno"]

    s = await view(api, sid)
    assert contents(s) == ["uno", "re: uno"]
    assert s["messageCount"] == 2 and s["messages"]["totalCount"] == 2
    assert s["headMessageId"] == edited["reply"]["id"]
    assert [m["parts"][0]["content"] for m in s["history"]] == ["uno", "re: uno"]
    # Sequences go on across branches; stats count every branch.
    assert [e["node"]["sequence"] for e in s["messages"]["edges"]] == [5, 6]
    assert s["stats"]["messageCount"] == 6 and s["stats"]["userMessages"] == 3


async def test_edit_in_the_middle_keeps_what_came_before(api: Api, admin: Api) -> None:
    recorder = Recorder()
    sid = await new_session(api, await agent_with(admin, recorder))
    await api.gql(SEND, {"s": sid, "c": "one"})
    two = (await api.gql(SEND, {"s": sid, "c": "two"}))["sendMessage"]
    await api.gql(SEND, {"s": sid, "c": "three"})
    edited = (await api.gql(EDIT, {"m": two["userMessage"]["id"], "c": "deux"}))["editMessage"]
    assert prompts(recorder.requests[-1]) == ["one", "re: one", "deux"]
    assert edited["userMessage"]["siblingIds"] == [two["userMessage"]["id"], edited["userMessage"]["id"]]
    assert contents(await view(api, sid)) == ["one", "re: one", "deux", "re: deux"]


async def test_regenerate_a_reply_and_a_user_message(api: Api, admin: Api) -> None:
    recorder = Recorder()
    sid = await new_session(api, await agent_with(admin, recorder))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    await api.gql(SEND, {"s": sid, "c": "two"})

    again = (await api.gql(REGENERATE, {"m": one["reply"]["id"]}))["regenerate"]
    assert again["run"]["status"] == "COMPLETED"
    assert again["userMessage"]["id"] == one["userMessage"]["id"]  # answered again, not copied
    assert again["reply"]["parentId"] == one["userMessage"]["id"]
    assert again["reply"]["siblingIds"] == [one["reply"]["id"], again["reply"]["id"]]
    assert again["reply"]["siblingIndex"] == 1
    assert prompts(recorder.requests[-1]) == ["one"]
    s = await view(api, sid)
    assert [e["node"]["id"] for e in s["messages"]["edges"]] == [
        one["userMessage"]["id"],
        again["reply"]["id"],
    ]
    assert s["messageCount"] == 2

    third = (await api.gql(REGENERATE, {"m": one["userMessage"]["id"]}))["regenerate"]
    assert third["reply"]["siblingIds"] == [one["reply"]["id"], again["reply"]["id"], third["reply"]["id"]]
    assert third["reply"]["siblingIndex"] == 2
    # The stored user message is left as it was: history holds it once.
    history = (await view(api, sid))["history"]
    assert [m["kind"] for m in history] == ["request", "response"]


async def test_switch_branch_follows_the_newest_child(api: Api, admin: Api) -> None:
    sid = await new_session(api, await agent_with(admin))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    two = (await api.gql(SEND, {"s": sid, "c": "two"}))["sendMessage"]
    await api.gql(EDIT, {"m": one["userMessage"]["id"], "c": "uno"})

    # Back to the first branch through its first message: down to its newest message.
    switched = (await api.gql(SWITCH, {"m": one["userMessage"]["id"]}))["switchBranch"]
    assert switched == {"headMessageId": two["reply"]["id"], "messageCount": 4}
    assert contents(await view(api, sid)) == ["one", "re: one", "two", "re: two"]
    # sendMessage continues from the head.
    three = (await api.gql(SEND, {"s": sid, "c": "three"}))["sendMessage"]
    assert three["userMessage"]["parentId"] == two["reply"]["id"]

    # Regenerating in the middle, then switching to the older reply, brings its whole branch back.
    await api.gql(REGENERATE, {"m": one["reply"]["id"]})
    assert contents(await view(api, sid)) == ["one", "re: one"]
    back = (await api.gql(SWITCH, {"m": one["reply"]["id"]}))["switchBranch"]
    assert back["messageCount"] == 6
    assert contents(await view(api, sid))[-2:] == ["three", "re: three"]


async def test_fork_copies_the_path_state_and_session_memory(api: Api, admin: Api) -> None:
    recorder = Recorder()
    sid = await new_session(api, await agent_with(admin, recorder), state={"mood": "calm"}, title="Original")
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    await api.gql(SEND, {"s": sid, "c": "two"})
    await api.gql(
        'mutation($s: UUID!) { saveMemory(key: "k", value: 1, scope: SESSION, sessionId: $s) { key } }',
        {"s": sid},
    )
    fork = (await api.gql(FORK, {"m": one["reply"]["id"], "t": "Fork"}))["forkSession"]
    assert fork["id"] != sid
    assert fork["title"] == "Fork" and fork["state"] == {"mood": "calm"}
    assert fork["forkedFrom"] == {"id": one["reply"]["id"], "content": "re: one"}
    assert fork["memory"] == [{"key": "k", "value": 1}]
    nodes = [e["node"] for e in fork["messages"]["edges"]]
    assert [(n["sequence"], n["content"]) for n in nodes] == [(1, "one"), (2, "re: one")]
    assert nodes[0]["parentId"] is None and fork["messageCount"] == 2
    # The source is unchanged; the fork goes on by itself from its copy.
    assert contents(await view(api, sid)) == ["one", "re: one", "two", "re: two"]
    await api.gql(SEND, {"s": fork["id"], "c": "later"})
    assert prompts(recorder.requests[-1]) == ["one", "re: one", "later"]
    # Its history is the source's path, JSON for JSON.
    source_history = (await view(api, sid))["history"][:2]
    assert (await view(api, fork["id"]))["history"][:2] == source_history
    # A fork of a fork whose source is deleted: forkedFrom becomes null.
    await api.gql("mutation($s: UUID!) { deleteSession(id: $s) }", {"s": sid})
    again = await api.gql("query($id: UUID!) { session(id: $id) { forkedFrom { id } } }", {"id": fork["id"]})
    assert again["session"]["forkedFrom"] is None


async def test_bad_targets(api: Api, other: Api, admin: Api) -> None:
    sid = await new_session(api, await agent_with(admin))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    assert await api.code(EDIT, {"m": one["reply"]["id"], "c": "x"}) == "BAD_USER_INPUT"
    missing = str(uuid.uuid4())
    for query, variables in [
        (EDIT, {"m": missing, "c": "x"}),
        (REGENERATE, {"m": missing}),
        (SWITCH, {"m": missing}),
        (FORK, {"m": missing}),
    ]:
        assert await api.code(query, variables) == "NOT_FOUND"
    # Another user's message is not found either, and nothing changed.
    for query, variables in [
        (EDIT, {"m": one["userMessage"]["id"], "c": "x"}),
        (REGENERATE, {"m": one["reply"]["id"]}),
        (SWITCH, {"m": one["userMessage"]["id"]}),
        (FORK, {"m": one["userMessage"]["id"]}),
    ]:
        assert await other.code(query, variables) == "NOT_FOUND"
    assert (await view(api, sid))["messageCount"] == 2
    # Limits of sendMessage apply to an edit.
    too_long = "x" * (api.rt.settings.max_message_chars + 1)
    assert await api.code(EDIT, {"m": one["userMessage"]["id"], "c": too_long}) == "BAD_USER_INPUT"


async def test_idempotent_edit_and_busy_session(api: Api, admin: Api) -> None:
    gate, begun = asyncio.Event(), asyncio.Event()

    async def slow(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "thinking"
        begun.set()
        await asyncio.wait_for(gate.wait(), 30)
        yield " done"

    name = f"b-{uuid.uuid4().hex[:8]}"
    model = register(admin.rt.models, slow)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False}},
    )
    sid = await new_session(api, name)
    gate.set()
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    gate.clear()
    begun.clear()
    first = asyncio.create_task(api.gql(EDIT, {"m": one["userMessage"]["id"], "c": "uno", "k": "e1"}))
    try:
        # While the edit's reply runs, every other turn of the session is refused ...
        await asyncio.wait_for(begun.wait(), 30)
        assert (await view(api, sid))["messageCount"] == 1
        assert await api.code(REGENERATE, {"m": one["reply"]["id"]}) == "RUN_IN_PROGRESS"
        assert await api.code(SWITCH, {"m": one["reply"]["id"]}) == "RUN_IN_PROGRESS"
        assert await api.code(EDIT, {"m": one["userMessage"]["id"], "c": "other"}) == "RUN_IN_PROGRESS"
    finally:
        gate.set()
    done = (await first)["editMessage"]
    # ... and a retry with the same key answers with the same run instead of a second edit.
    retry = (await api.gql(EDIT, {"m": one["userMessage"]["id"], "c": "uno", "k": "e1"}))["editMessage"]
    assert retry["run"]["id"] == done["run"]["id"]
    assert retry["userMessage"]["id"] == done["userMessage"]["id"]
    assert len((await view(api, sid))["messages"]["edges"]) == 2


async def test_subscriptions_stream_edits_and_regenerations(api: Api, admin: Api, schema: Any) -> None:
    sid = await new_session(api, await agent_with(admin))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    edit = """subscription($m: UUID!, $c: String!) { editMessage(messageId: $m, content: $c) {
      __typename ... on MessageAdded { message { role content parentId } }
      ... on TextDelta { delta } ... on RunFinished { run { status } } } }"""
    assert api.token is not None
    async with subscription(
        schema, api.rt, api.token, edit, {"m": one["userMessage"]["id"], "c": "uno"}
    ) as s:
        got = [event async for event in s]
    kinds = [e["__typename"] for e in got]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    added = [e["message"] for e in got if e["__typename"] == "MessageAdded"]
    assert added[0] == {"role": "USER", "content": "uno", "parentId": None}
    assert "".join(e["delta"] for e in got if e["__typename"] == "TextDelta") == "re: uno"

    reply_id = (await view(api, sid))["headMessageId"]
    regen = """subscription($m: UUID!) { regenerate(messageId: $m) {
      __typename ... on MessageAdded { message { role content } } ... on RunFinished { run { status } } } }"""
    async with subscription(schema, api.rt, api.token, regen, {"m": reply_id}) as s:
        got = [event async for event in s]
    # No new user message: the run starts, its reply is added, it ends.
    assert [e["__typename"] for e in got if e["__typename"] != "TextDelta"] == [
        "RunStarted",
        "MessageAdded",
        "RunFinished",
    ]
    assert got[-1]["run"]["status"] == "COMPLETED"


async def test_session_events_replay_every_branch(api: Api, admin: Api, schema: Any) -> None:
    sid = await new_session(api, await agent_with(admin))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    await api.gql(EDIT, {"m": one["userMessage"]["id"], "c": "uno"})
    query = """subscription($s: UUID!) { sessionEvents(sessionId: $s, afterSequence: 0) {
      ... on MessageAdded { message { sequence content parentId } } } }"""
    assert api.token is not None
    seen: list[dict[str, Any]] = []
    async with subscription(schema, api.rt, api.token, query, {"s": sid}) as s:
        async with asyncio.timeout(30):
            async for event in s:
                seen.append(event["message"])
                if len(seen) == 4:
                    break
    assert [m["content"] for m in seen] == ["one", "re: one", "uno", "re: uno"]
    assert seen[2]["parentId"] is None


async def test_clear_history_removes_every_branch(api: Api, admin: Api) -> None:
    sid = await new_session(api, await agent_with(admin))
    one = (await api.gql(SEND, {"s": sid, "c": "one"}))["sendMessage"]
    await api.gql(EDIT, {"m": one["userMessage"]["id"], "c": "uno"})
    await api.gql("mutation($s: UUID!) { clearSessionHistory(id: $s) { id } }", {"s": sid})
    s = await view(api, sid)
    assert s["headMessageId"] is None and s["messageCount"] == 0 and s["stats"]["messageCount"] == 0
    fresh = (await api.gql(SEND, {"s": sid, "c": "again"}))["sendMessage"]
    assert fresh["userMessage"]["parentId"] is None and fresh["userMessage"]["sequence"] == 5


async def test_history_window_stays_on_the_active_branch(api: Api, admin: Api) -> None:
    recorder = Recorder()
    sid = await new_session(api, await agent_with(admin, recorder, historyLimit=4))
    turns = [(await api.gql(SEND, {"s": sid, "c": f"m{i}"}))["sendMessage"] for i in range(4)]
    # A long side branch from the second turn, then back to the first branch's tip.
    await api.gql(EDIT, {"m": turns[1]["userMessage"]["id"], "c": "side0"})
    for i in range(1, 4):
        await api.gql(SEND, {"s": sid, "c": f"side{i}"})
    await api.gql(SWITCH, {"m": turns[3]["reply"]["id"]})
    await api.gql(SEND, {"s": sid, "c": "last"})
    assert prompts(recorder.requests[-1]) == ["m2", "re: m2", "m3", "re: m3", "last"]


def test_existing_sessions_migrate_to_one_branch() -> None:
    with fresh_database() as url:
        done = subprocess.run(
            [sys.executable, "-m", "tests.branch_migration", url], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "one branch"
