"""Memory: key-value entries per user and per session."""

from __future__ import annotations

import uuid

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


async def entries(api, **kw):
    return (await api.gql(LIST, kw))["memory"]


async def test_user_memory_save_list_upsert_delete(api):
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


async def test_session_memory(api):
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


async def test_session_scope_needs_session_id(api):
    assert await api.code(SAVE, {"key": "k", "value": 1, "scope": "SESSION"}) == "BAD_USER_INPUT"
    assert await api.code(LIST, {"scope": "SESSION"}) == "BAD_USER_INPUT"
    assert await api.code(DELETE, {"key": "k", "scope": "SESSION"}) == "BAD_USER_INPUT"
    s = await create_session(api)
    assert await api.code(SAVE, {"key": "k", "value": 1, "scope": "USER", "sid": s["id"]}) == "BAD_USER_INPUT"
    unknown = str(uuid.uuid4())
    assert await api.code(SAVE, {"key": "k", "value": 1, "scope": "SESSION", "sid": unknown}) == "NOT_FOUND"


async def test_bad_keys_and_values(api):
    assert await api.code(SAVE, {"key": "", "value": 1}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "   ", "value": 1}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "k" * 201, "value": 1}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "big", "value": "x" * 70_000}) == "BAD_USER_INPUT"
    assert await api.code(SAVE, {"key": "nothing", "value": None}) == "BAD_USER_INPUT"  # JSON!
    assert await entries(api) == []
    saved = (await api.gql(SAVE, {"key": "  padded  ", "value": False}))["saveMemory"]
    assert (saved["key"], saved["value"]) == ("padded", False)


async def test_clear_memory(api):
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


async def test_memory_is_per_user(api, other):
    await api.gql(SAVE, {"key": "secret", "value": "mine"})
    await other.gql(SAVE, {"key": "secret", "value": "theirs"})
    assert [e["value"] for e in await entries(api)] == ["mine"]
    assert [e["value"] for e in await entries(other)] == ["theirs"]
    assert (await other.gql(CLEAR, {}))["clearMemory"] == 1
    assert [e["value"] for e in await entries(api)] == ["mine"]
