"""Memory: key-value entries per user and per session."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo

from tests.conftest import Api, MakeApi
from tests.helpers import create_session

SAVE = """
mutation($key: String!, $value: JSON!, $scope: MemoryScope, $sid: UUID) {
  saveMemory(key: $key, value: $value, scope: $scope, sessionId: $sid) {
    key value scope sessionId createdAt updatedAt
  }
}
"""
LIST = "query($scope: MemoryScope, $sid: UUID) { memory(scope: $scope, sessionId: $sid) { key value scope sessionId } }"
DELETE = "mutation($key: String!, $scope: MemoryScope, $sid: UUID) { deleteMemory(key: $key, scope: $scope, sessionId: $sid) }"
CLEAR = "mutation($scope: MemoryScope, $sid: UUID) { clearMemory(scope: $scope, sessionId: $sid) }"


async def entries(api: Api, **kw: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await api.gql(LIST, kw))["memory"]
    return found


async def test_user_memory_save_list_upsert_delete(api: Api) -> None:
    saved = (await api.gql(SAVE, {"key": "name", "value": "Ada"}))["saveMemory"]
    assert (saved["key"], saved["value"], saved["scope"], saved["sessionId"]) == ("name", "Ada", "USER", None)
    await api.gql(SAVE, {"key": "prefs", "value": {"units": "metric", "langs": ["en", "fr"]}})
    assert await entries(api) == [
        {"key": "name", "value": "Ada", "scope": "USER", "sessionId": None},
        {
            "key": "prefs",
            "value": {"units": "metric", "langs": ["en", "fr"]},
            "scope": "USER",
            "sessionId": None,
        },
    ]
    # Same key: the value is replaced, not duplicated.
    again = (await api.gql(SAVE, {"key": "name", "value": "Ada Lovelace"}))["saveMemory"]
    assert again["value"] == "Ada Lovelace" and again["createdAt"] == saved["createdAt"]
    assert again["updatedAt"] >= saved["updatedAt"]
    assert [e["value"] for e in await entries(api, scope="USER") if e["key"] == "name"] == ["Ada Lovelace"]

    assert (await api.gql(DELETE, {"key": "name"}))["deleteMemory"] is True
    assert (await api.gql(DELETE, {"key": "name"}))["deleteMemory"] is False
    assert [e["key"] for e in await entries(api)] == ["prefs"]
    # An explicit null scope is the default, USER.
    assert [e["key"] for e in await entries(api, scope=None)] == ["prefs"]


async def test_session_memory(api: Api) -> None:
    s1 = await create_session(api)
    s2 = await create_session(api)
    await api.gql(SAVE, {"key": "topic", "value": "trip", "scope": "SESSION", "sid": s1["id"]})
    await api.gql(SAVE, {"key": "topic", "value": "food", "scope": "SESSION", "sid": s2["id"]})
    await api.gql(SAVE, {"key": "topic", "value": "user-level"})
    # Keys are unique per scope: three entries with the same key live side by side.
    assert await entries(api, scope="SESSION", sid=s1["id"]) == [
        {"key": "topic", "value": "trip", "scope": "SESSION", "sessionId": s1["id"]}
    ]
    assert [e["value"] for e in await entries(api, scope="SESSION", sid=s2["id"])] == ["food"]
    assert [e["value"] for e in await entries(api)] == ["user-level"]

    await api.gql(SAVE, {"key": "topic", "value": "trip to Lisbon", "scope": "SESSION", "sid": s1["id"]})
    await api.gql(SAVE, {"key": "dates", "value": [1, 2], "scope": "SESSION", "sid": s1["id"]})
    data = await api.gql(
        "query($id: UUID!) { session(id: $id) { memory { key value scope sessionId } } }", {"id": s1["id"]}
    )
    assert data["session"]["memory"] == [
        {"key": "dates", "value": [1, 2], "scope": "SESSION", "sessionId": s1["id"]},
        {"key": "topic", "value": "trip to Lisbon", "scope": "SESSION", "sessionId": s1["id"]},
    ]

    assert (await api.gql(DELETE, {"key": "topic", "scope": "SESSION", "sid": s1["id"]}))["deleteMemory"]
    assert [e["key"] for e in await entries(api, scope="SESSION", sid=s1["id"])] == ["dates"]
    assert [e["value"] for e in await entries(api, scope="SESSION", sid=s2["id"])] == ["food"]
    assert [e["value"] for e in await entries(api)] == ["user-level"]


async def test_session_scope_needs_session_id(api: Api) -> None:
    assert await api.code(SAVE, {"key": "k", "value": 1, "scope": "SESSION"}) == "BAD_USER_INPUT"
    assert await api.code(LIST, {"scope": "SESSION"}) == "BAD_USER_INPUT"
    assert await api.code(DELETE, {"key": "k", "scope": "SESSION"}) == "BAD_USER_INPUT"
    s = await create_session(api)
    assert await api.code(SAVE, {"key": "k", "value": 1, "scope": "USER", "sid": s["id"]}) == "BAD_USER_INPUT"
    unknown = str(uuid.uuid4())
    assert await api.code(SAVE, {"key": "k", "value": 1, "scope": "SESSION", "sid": unknown}) == "NOT_FOUND"


async def test_bad_keys_and_values(api: Api) -> None:
    assert await api.code(SAVE, {"key": "", "value": 1}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "   ", "value": 1}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "k" * 201, "value": 1}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "big", "value": "x" * 70_000}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "nothing", "value": None}) == "BAD_USER_INPUT"  # JSON!
    assert await entries(api) == []
    saved = (await api.gql(SAVE, {"key": "  padded  ", "value": False}))["saveMemory"]
    assert (saved["key"], saved["value"]) == ("padded", False)


async def test_clear_memory(api: Api) -> None:
    s1 = await create_session(api)
    s2 = await create_session(api)
    for key in ("a", "b"):
        await api.gql(SAVE, {"key": key, "value": 1})
        await api.gql(SAVE, {"key": key, "value": 1, "scope": "SESSION", "sid": s1["id"]})
        await api.gql(SAVE, {"key": key, "value": 1, "scope": "SESSION", "sid": s2["id"]})

    assert (await api.gql(CLEAR, {"scope": "SESSION", "sid": s1["id"]}))["clearMemory"] == 2
    assert await entries(api, scope="SESSION", sid=s1["id"]) == []
    assert len(await entries(api, scope="SESSION", sid=s2["id"])) == 2
    assert (await api.gql(CLEAR, {"scope": "USER"}))["clearMemory"] == 2
    assert await entries(api) == []
    assert len(await entries(api, scope="SESSION", sid=s2["id"])) == 2
    assert (await api.gql(CLEAR, {}))["clearMemory"] == 2
    assert await entries(api, scope="SESSION", sid=s2["id"]) == []
    assert (await api.gql(CLEAR, {}))["clearMemory"] == 0
    assert await api.code(CLEAR, {"scope": "USER", "sid": s1["id"]}) == "BAD_USER_INPUT"


async def test_memory_is_per_user(api: Api, other: Api) -> None:
    await api.gql(SAVE, {"key": "secret", "value": "mine"})
    await other.gql(SAVE, {"key": "secret", "value": "theirs"})
    assert [e["value"] for e in await entries(api)] == ["mine"]
    assert [e["value"] for e in await entries(other)] == ["theirs"]
    assert (await other.gql(CLEAR, {}))["clearMemory"] == 1
    assert [e["value"] for e in await entries(api)] == ["mine"]


async def test_a_users_memory_is_bounded_in_entries(api: Api, other: Api) -> None:
    for i in range(200):  # PARLEY_MAX_MEMORY_ENTRIES, across both scopes
        if i % 2:
            await api.gql(SAVE, {"key": f"k{i}", "value": i})
        else:
            await api.gql(
                SAVE, {"key": f"k{i}", "value": i, "scope": "SESSION", "sid": (await _session(api))}
            )
    assert await api.code(SAVE, {"key": "one-more", "value": 1}) == "BAD_USER_INPUT"
    # Replacing an entry is not growing: still allowed. Other users are unaffected.
    await api.gql(SAVE, {"key": "k1", "value": "replaced"})
    await other.gql(SAVE, {"key": "mine", "value": 1})
    assert "one-more" not in [e["key"] for e in await entries(api)]


async def _session(api: Api) -> str:
    return str((await create_session(api))["id"])


async def test_a_users_memory_is_bounded_in_bytes(api: Api) -> None:
    chunk = "m" * 60_000  # each value fits PARLEY_MAX_STATE_BYTES; five do not fit 256 KiB together
    for i in range(4):
        await api.gql(SAVE, {"key": f"big{i}", "value": chunk})
    error = await api.error(SAVE, {"key": "big4", "value": chunk})
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "PARLEY_MAX_MEMORY_BYTES" in error["message"]
    assert len(await entries(api)) == 4
    # Growing an entry past the total is refused too, and the old value stays.
    assert await api.code(SAVE, {"key": "big0", "value": chunk + "m" * 30_000}) == "BAD_USER_INPUT"
    assert [e["value"] for e in await entries(api) if e["key"] == "big0"] == [chunk]


async def test_the_memory_tool_reports_a_full_memory_to_the_model(api: Api, admin: Api) -> None:
    from tests.scripted import Recorder, call, register, tool_returns

    chunk = "m" * 60_000
    for i in range(4):
        await api.gql(SAVE, {"key": f"big{i}", "value": chunk})
    recorder = Recorder()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if not tool_returns(messages):
            yield call("save_memory", '{"key": "more", "value": "%s"}' % ("z" * 30_000), "s1")
        else:
            yield str(tool_returns(messages)[0].content)

    assert admin.runtime is not None
    model = register(admin.runtime.models, stream, recorder)
    name = f"mem-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }", {"i": {"name": name, "model": model}}
    )
    sid = (await create_session(api, agentName=name))["id"]
    sent = await api.gql(
        'mutation($s: UUID!) { sendMessage(sessionId: $s, content: "note this") { run { status } reply { content } } }',
        {"s": sid},
    )
    assert sent["sendMessage"]["run"]["status"] == "COMPLETED"
    assert sent["sendMessage"]["reply"]["content"].startswith("not saved: memory is full")
    assert "more" not in [e["key"] for e in await entries(api)]


async def test_memory_reaches_the_model_but_never_its_stored_history(
    make_api: MakeApi, admin: Api, sql: asyncpg.Connection
) -> None:
    """60 turns with a full memory store exactly what the same turns store without memory."""
    from tests.scripted import Recorder, register

    recorder = Recorder()

    async def echo(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        yield "ok"

    assert admin.runtime is not None
    model = register(admin.runtime.models, echo, recorder)
    name = f"mem-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }", {"i": {"name": name, "model": model}}
    )
    sizes = []
    for full in (True, False):
        api = await make_api()
        if full:
            for i in range(4):
                await api.gql(SAVE, {"key": f"fact{i}", "value": f"{i}" * 60_000})
        sid = (await create_session(api, agentName=name))["id"]
        for turn in range(60):
            await api.gql(
                "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id } } }",
                {"s": sid, "c": f"turn {turn:02d}"},
            )
            if full:
                assert "0" * 60_000 in (recorder.instructions[-1] or "")  # the model saw the memory
        stored = await sql.fetchval(
            "SELECT sum(octet_length(model_message)) FROM messages WHERE session_id = $1", uuid.UUID(sid)
        )
        history = (await api.gql("query($s: UUID!) { session(id: $s) { history } }", {"s": sid}))["session"]
        assert "0" * 1000 not in json.dumps(history)
        sizes.append(stored)
    with_memory, without = sizes
    assert abs(with_memory - without) <= 0.01 * without, sizes
