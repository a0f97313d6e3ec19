"""Sessions: create, find, list (keyset), filter, get-or-create, update, state, clear, delete, title."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from tests.conftest import Api
from tests.helpers import (
    SESSION_FIELDS,
    add_messages,
    assistant,
    create_session,
    find_session,
    get_session,
    user,
)

LIST = """
query($first: Int, $after: String, $filter: SessionFilter) {
  sessions(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id title } }
  }
}
"""

GET_OR_CREATE = """
mutation($ext: String!, $agent: String) { getOrCreateSession(externalId: $ext, agentName: $agent) { id externalId agent { name } } }
"""

UPDATE_STATE = """
mutation($id: UUID!, $set: JSON, $unset: [String!], $v: Int) {
  updateSessionState(id: $id, set: $set, unset: $unset, expectedVersion: $v) { state stateVersion }
}
"""


async def list_ids(api: Api, **variables: Any) -> list[str]:
    data = await api.gql(LIST, variables)
    return [e["node"]["id"] for e in data["sessions"]["edges"]]


async def test_create_session_uses_default_agent(api: Api) -> None:
    s = await create_session(api)
    assert s["agent"]["name"] == "assistant"
    assert s["state"] == {} and s["metadata"] == {} and s["stateVersion"] == 0
    assert s["isActive"] is True and s["messageCount"] == 0 and s["title"] is None
    uuid.UUID(s["id"])


async def test_create_session_with_fields_and_agent(api: Api, admin: Api) -> None:
    name = f"helper-{uuid.uuid4().hex[:6]}"
    await admin.gql(
        'mutation($n: String!) { createAgent(input: {name: $n, model: "echo"}) { name } }', {"n": name}
    )
    s = await create_session(
        api,
        agentName=name,
        externalId="ext-1",
        title="Hello",
        state={"step": 1},
        metadata={"channel": "web"},
    )
    assert s["agent"]["name"] == name
    assert (s["externalId"], s["title"], s["state"], s["metadata"]) == (
        "ext-1",
        "Hello",
        {"step": 1},
        {"channel": "web"},
    )


async def test_create_session_unknown_agent_is_not_found(api: Api) -> None:
    code = await api.code(
        'mutation { createSession(input: {agentName: "no-such-agent"}) { id } }',
    )
    assert code == "NOT_FOUND"


async def test_duplicate_external_id_is_conflict(api: Api, other: Api) -> None:
    await create_session(api, externalId="dup")
    assert (
        await api.code(
            'mutation { createSession(input: {externalId: "dup"}) { id } }',
        )
        == "CONFLICT"
    )
    # externalId is unique per user: someone else may use the same one.
    await create_session(other, externalId="dup")


async def test_state_and_metadata_must_be_objects(api: Api) -> None:
    for field in ("state", "metadata"):
        assert (
            await api.code(
                "mutation($v: JSON) { createSession(input: {" + field + ": $v}) { id } }", {"v": [1, 2]}
            )
            == "BAD_USER_INPUT"
        )


async def test_session_by_id_and_external_id(api: Api) -> None:
    s = await create_session(api, externalId="find-me")
    by_id = await get_session(api, s["id"])
    assert by_id == s
    data = await api.gql(
        f'{{ session(externalId: "find-me") {{ {SESSION_FIELDS} }} }}',
    )
    assert data["session"] == s
    assert (await api.gql('{ session(externalId: "nope") { id } }'))["session"] is None
    assert await find_session(api, str(uuid.uuid4())) is None


async def test_sessions_pagination_most_recent_activity_first(api: Api) -> None:
    made = [await create_session(api, title=f"s{i}") for i in range(5)]
    ids = [s["id"] for s in made]
    # New activity moves a session to the front.
    await add_messages(api, ids[1], user("hi"))
    expected = [ids[1], ids[4], ids[3], ids[2], ids[0]]

    assert await list_ids(api) == expected

    seen, after, pages = [], None, []
    while True:
        data = (await api.gql(LIST, {"first": 2, "after": after}))["sessions"]
        assert data["totalCount"] == 5
        pages.append(data["pageInfo"])
        seen += [e["node"]["id"] for e in data["edges"]]
        assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        assert data["pageInfo"]["startCursor"] == data["edges"][0]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert seen == expected
    assert [p["hasNextPage"] for p in pages] == [True, True, False]
    assert [p["hasPreviousPage"] for p in pages] == [False, True, True]

    # Exactly a full page: no next page.
    data = (await api.gql(LIST, {"first": 5}))["sessions"]
    assert data["pageInfo"]["hasNextPage"] is False and len(data["edges"]) == 5


async def test_sessions_bad_cursor_and_page_size(api: Api) -> None:
    assert await api.code(LIST, {"after": "not-a-cursor"}) == "BAD_USER_INPUT"
    assert await api.code(LIST, {"first": 101}) == "BAD_USER_INPUT"
    assert await api.code(LIST, {"first": -1}) == "BAD_USER_INPUT"


async def test_sessions_filter(api: Api, admin: Api) -> None:
    agent = f"filter-{uuid.uuid4().hex[:6]}"
    await admin.gql(
        'mutation($n: String!) { createAgent(input: {name: $n, model: "echo"}) { name } }', {"n": agent}
    )
    a = await create_session(api, title="Trip to Lisbon")
    b = await create_session(api, title="Groceries", agentName=agent)
    c = await create_session(api, title="100% done")
    await api.gql(
        "mutation($id: UUID!) { updateSession(id: $id, input: {isActive: false}) { id } }", {"id": c["id"]}
    )

    assert await list_ids(api, filter={"agentName": agent}) == [b["id"]]
    assert set(await list_ids(api, filter={"agentName": "assistant"})) == {a["id"], c["id"]}
    assert await list_ids(api, filter={"isActive": False}) == [c["id"]]
    assert set(await list_ids(api, filter={"isActive": True})) == {a["id"], b["id"]}
    assert await list_ids(api, filter={"titleContains": "lisBON"}) == [a["id"]]
    # LIKE wildcards in the search text are taken literally.
    assert await list_ids(api, filter={"titleContains": "%"}) == [c["id"]]
    assert await list_ids(api, filter={"titleContains": "_"}) == []

    # updatedAfter: strictly later updates only.
    cutoff = (await get_session(api, b["id"]))["updatedAt"]
    assert await list_ids(api, filter={"updatedAfter": cutoff}) == [c["id"]]
    await api.gql(
        'mutation($id: UUID!) { updateSession(id: $id, input: {title: "Trip to Porto"}) { id } }',
        {"id": a["id"]},
    )
    assert set(await list_ids(api, filter={"updatedAfter": cutoff})) == {a["id"], c["id"]}

    data = (await api.gql(LIST, {"filter": {"isActive": True, "titleContains": "trip"}}))["sessions"]
    assert data["totalCount"] == 1 and data["edges"][0]["node"]["id"] == a["id"]


async def test_get_or_create_is_idempotent(api: Api) -> None:
    first = (await api.gql(GET_OR_CREATE, {"ext": "chat-42"}))["getOrCreateSession"]
    again = (await api.gql(GET_OR_CREATE, {"ext": "chat-42"}))["getOrCreateSession"]
    assert first == again and first["externalId"] == "chat-42" and first["agent"]["name"] == "assistant"
    assert await api.code(GET_OR_CREATE, {"ext": "other", "agent": "no-such-agent"}) == "NOT_FOUND"


async def test_get_or_create_concurrent_calls_make_one_session(api: Api) -> None:
    results = await asyncio.gather(*(api.gql(GET_OR_CREATE, {"ext": "race"}) for _ in range(20)))
    ids = {r["getOrCreateSession"]["id"] for r in results}
    assert len(ids) == 1
    data = (await api.gql(LIST, {"first": 100}))["sessions"]
    assert data["totalCount"] == 1 and data["edges"][0]["node"]["id"] == ids.pop()


async def test_update_session(api: Api) -> None:
    s = await create_session(api, title="old", metadata={"a": 1})
    data = await api.gql(
        """mutation($id: UUID!) { updateSession(id: $id, input: {title: "new", metadata: {b: 2}, isActive: false})
           { title metadata isActive state stateVersion } }""",
        {"id": s["id"]},
    )
    assert data["updateSession"] == {
        "title": "new",
        "metadata": {"b": 2},
        "isActive": False,
        "state": {},
        "stateVersion": 0,
    }
    # Omitted fields are left alone.
    data = await api.gql(
        "mutation($id: UUID!) { updateSession(id: $id, input: {isActive: true}) { title metadata isActive } }",
        {"id": s["id"]},
    )
    assert data["updateSession"] == {"title": "new", "metadata": {"b": 2}, "isActive": True}


async def test_update_session_keeps_message_counters(api: Api) -> None:
    s = await create_session(api)
    await add_messages(api, s["id"], user("one"))
    await api.gql(
        'mutation($id: UUID!) { updateSession(id: $id, input: {title: "t"}) { id } }', {"id": s["id"]}
    )
    msgs = await add_messages(api, s["id"], assistant("two"))
    assert msgs[0]["sequence"] == 2
    assert (await get_session(api, s["id"]))["messageCount"] == 2


async def test_update_session_state(api: Api) -> None:
    s = await create_session(api, state={"keep": True})
    sid = s["id"]

    async def update(**kw: Any) -> dict[str, Any]:
        found: dict[str, Any] = (await api.gql(UPDATE_STATE, {"id": sid, **kw}))["updateSessionState"]
        return found

    assert await update(set={"a": 1, "b": {"x": 1}}) == {
        "state": {"keep": True, "a": 1, "b": {"x": 1}},
        "stateVersion": 1,
    }
    # Top-level merge: `b` is replaced, not deep-merged.
    assert await update(set={"b": {"y": 2}}) == {
        "state": {"keep": True, "a": 1, "b": {"y": 2}},
        "stateVersion": 2,
    }
    assert await update(unset=["a", "missing"]) == {"state": {"keep": True, "b": {"y": 2}}, "stateVersion": 3}
    assert await update(set={"c": 3}, v=3) == {
        "state": {"keep": True, "b": {"y": 2}, "c": 3},
        "stateVersion": 4,
    }
    assert await api.code(UPDATE_STATE, {"id": sid, "set": {"d": 4}, "v": 3}) == "CONFLICT"
    assert await api.code(UPDATE_STATE, {"id": sid, "set": [1]}) == "BAD_USER_INPUT"
    after = await get_session(api, sid)
    assert after["state"] == {"keep": True, "b": {"y": 2}, "c": 3} and after["stateVersion"] == 4


async def test_update_state_concurrent_calls_each_bump_version(api: Api) -> None:
    s = await create_session(api)
    await asyncio.gather(*(api.gql(UPDATE_STATE, {"id": s["id"], "set": {f"k{i}": i}}) for i in range(10)))
    after = await get_session(api, s["id"])
    assert after["stateVersion"] == 10
    assert after["state"] == {f"k{i}": i for i in range(10)}


async def test_clear_session_history(api: Api) -> None:
    s = await create_session(api, state={"x": 1})
    sid = s["id"]
    await add_messages(api, sid, user("one"), assistant("two"), user("three"))
    await api.gql(
        'mutation($sid: UUID!) { saveMemory(key: "k", value: 1, scope: SESSION, sessionId: $sid) { key } }',
        {"sid": sid},
    )
    data = await api.gql(
        """mutation($id: UUID!) { clearSessionHistory(id: $id) {
             id state messageCount title memory { key value } messages { totalCount edges { node { id } } } } }""",
        {"id": sid},
    )
    cleared = data["clearSessionHistory"]
    assert cleared["id"] == sid and cleared["state"] == {"x": 1} and cleared["messageCount"] == 0
    assert cleared["memory"] == [{"key": "k", "value": 1}]
    assert cleared["messages"] == {"totalCount": 0, "edges": []}
    assert cleared["title"] == "one"  # the session itself is kept as it was

    # Sequence numbers are never reused.
    again = await add_messages(api, sid, user("four"))
    assert again[0]["sequence"] == 4
    assert (await get_session(api, sid))["messageCount"] == 1


async def test_delete_session(api: Api, sql: asyncpg.Connection) -> None:
    s = await create_session(api)
    sid = s["id"]
    await add_messages(api, sid, user("hello"), assistant("hi"))
    await api.gql(
        'mutation($sid: UUID!) { saveMemory(key: "k", value: 1, scope: SESSION, sessionId: $sid) { key } }',
        {"sid": sid},
    )
    await api.gql('mutation { saveMemory(key: "u", value: 2) { key } }')

    assert (await api.gql("mutation($id: UUID!) { deleteSession(id: $id) }", {"id": sid})) == {
        "deleteSession": True
    }
    assert await find_session(api, sid) is None
    assert await api.code("mutation($id: UUID!) { deleteSession(id: $id) }", {"id": sid}) == "NOT_FOUND"
    assert (
        await api.code("query($id: UUID!) { messages(sessionId: $id) { totalCount } }", {"id": sid})
        == "NOT_FOUND"
    )
    assert await sql.fetchval("SELECT count(*) FROM messages WHERE session_id = $1", uuid.UUID(sid)) == 0
    assert (
        await sql.fetchval("SELECT count(*) FROM memory_entries WHERE session_id = $1", uuid.UUID(sid)) == 0
    )
    # The user's own memory is not the session's.
    assert (await api.gql("{ memory { key } }"))["memory"] == [{"key": "u"}]


async def test_title_from_first_user_message(api: Api) -> None:
    s = await create_session(api)
    await add_messages(api, s["id"], assistant("Hello! How can I help?"))
    assert (await get_session(api, s["id"]))["title"] is None
    text = "Plan a week in Lisbon for two people in late spring, with trains and museums\nsecond line"
    await add_messages(api, s["id"], user(text))
    title = (await get_session(api, s["id"]))["title"]
    assert title == "Plan a week in Lisbon for two people in late spring, with"
    assert len(title) <= 60
    # Later user messages do not change it.
    await add_messages(api, s["id"], user("Something else"))
    assert (await get_session(api, s["id"]))["title"] == title


async def test_title_cut_at_word_boundary_edge_cases(api: Api) -> None:
    cases = {
        # the 61st character is a space: the first 60 characters are whole words
        ("x" * 55 + " abcd efgh"): "x" * 55 + " abcd",
        # a single word longer than the limit is cut hard
        ("y" * 80): "y" * 60,
        "  \n\n  Short question?  \nmore": "Short question?",
        ("word " * 20).strip(): ("word " * 12).strip(),
    }
    for text, expected in cases.items():
        s = await create_session(api)
        await add_messages(api, s["id"], user(text))
        title = (await get_session(api, s["id"]))["title"]
        assert title == expected, (text, title)
        assert len(title) <= 60


async def test_explicit_title_is_kept(api: Api) -> None:
    s = await create_session(api, title="Mine")
    await add_messages(api, s["id"], user("A question"))
    assert (await get_session(api, s["id"]))["title"] == "Mine"
