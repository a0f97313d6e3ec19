"""A user never sees nor changes another user's sessions, messages, memory or runs."""

from __future__ import annotations

import json

from tests.conftest import Api
from tests.helpers import MESSAGE_FIELDS, SESSION_FIELDS, add_messages, assistant, create_session, tool, user

SNAPSHOT = f"""
query($id: UUID!) {{
  session(id: $id) {{
    {SESSION_FIELDS}
    history
    memory {{ key value scope sessionId updatedAt }}
    messages(first: 100) {{ totalCount edges {{ node {{ {MESSAGE_FIELDS} }} }} }}
  }}
  memory {{ key value updatedAt }}
}}
"""

# Operations that name the owner's session (or its run): each must answer NOT_FOUND.
NOT_FOUND_OPERATIONS: dict[str, str] = {
    "messages": "query($sid: UUID!) { messages(sessionId: $sid) { totalCount edges { node { content } } } }",
    "messages backward": "query($sid: UUID!) { messages(sessionId: $sid, last: 5) { totalCount } }",
    "memory": "query($sid: UUID!) { memory(scope: SESSION, sessionId: $sid) { key value } }",
    "updateSession": 'mutation($sid: UUID!) { updateSession(id: $sid, input: {title: "mine now"}) { id } }',
    "updateSession isActive": "mutation($sid: UUID!) { updateSession(id: $sid, input: {isActive: false}) { id } }",
    "updateSessionState": "mutation($sid: UUID!) { updateSessionState(id: $sid, set: {x: 1}) { id } }",
    "updateSessionState unset": 'mutation($sid: UUID!) { updateSessionState(id: $sid, unset: ["plan"]) { id } }',
    "updateSessionState expectedVersion": (
        "mutation($sid: UUID!) { updateSessionState(id: $sid, set: {x: 1}, expectedVersion: 1) { id } }"
    ),
    "clearSessionHistory": "mutation($sid: UUID!) { clearSessionHistory(id: $sid) { id } }",
    "deleteSession": "mutation($sid: UUID!) { deleteSession(id: $sid) }",
    "addMessages": 'mutation($sid: UUID!) { addMessages(sessionId: $sid, messages: [{role: USER, content: "hi"}]) { id } }',
    "addMessages answering the owner's call": (
        "mutation($sid: UUID!) { addMessages(sessionId: $sid, "
        'messages: [{role: TOOL, content: "x", toolCallId: "call_a"}]) { id } }'
    ),
    "saveMemory": 'mutation($sid: UUID!) { saveMemory(key: "topic", value: "hijack", scope: SESSION, sessionId: $sid) { key } }',
    "deleteMemory": 'mutation($sid: UUID!) { deleteMemory(key: "topic", scope: SESSION, sessionId: $sid) }',
    "clearMemory": "mutation($sid: UUID!) { clearMemory(scope: SESSION, sessionId: $sid) }",
    "clearMemory without scope": "mutation($sid: UUID!) { clearMemory(sessionId: $sid) }",
    "searchMessages": 'query($sid: UUID!) { searchMessages(query: "secret", sessionId: $sid) { snippet } }',
    "sendMessage": 'mutation($sid: UUID!) { sendMessage(sessionId: $sid, content: "hi") { run { id } } }',
    "cancelRun": "mutation($rid: UUID!) { cancelRun(id: $rid) { id } }",
}


async def _owner_world(api: Api) -> tuple[str, str]:
    s = await create_session(api, externalId="owned", title="Private", state={"plan": "A"}, metadata={"m": 1})
    sid = s["id"]
    await add_messages(
        api,
        sid,
        user("secret question"),
        assistant("", {"id": "call_a", "name": "lookup", "arguments": {"q": "x"}}),
        tool("call_a", "secret result"),
        assistant("secret answer"),
    )
    await api.gql(
        'mutation($sid: UUID!) { saveMemory(key: "topic", value: "secret", scope: SESSION, sessionId: $sid) { key } }',
        {"sid": sid},
    )
    await api.gql('mutation { saveMemory(key: "mine", value: "secret") { key } }')
    await api.gql(
        "mutation($sid: UUID!) { updateSessionState(id: $sid, set: {step: 2}) { stateVersion } }",
        {"sid": sid},
    )
    data = await api.gql(
        'mutation($sid: UUID!) { sendMessage(sessionId: $sid, content: "one more") { run { id } } }',
        {"sid": sid},
    )
    return sid, data["sendMessage"]["run"]["id"]


async def test_other_users_data_is_invisible_and_untouchable(api: Api, other: Api) -> None:
    sid, run_id = await _owner_world(api)
    before = await api.gql(SNAPSHOT, {"id": sid})
    assert before["session"]["messages"]["totalCount"] >= 5

    # Lookups answer as if nothing existed.
    assert (await other.gql("query($id: UUID!) { session(id: $id) { id } }", {"id": sid}))["session"] is None
    assert (await other.gql('{ session(externalId: "owned") { id } }'))["session"] is None
    assert (await other.gql("query($id: UUID!) { run(id: $id) { id } }", {"id": run_id}))["run"] is None
    listed = (await other.gql("{ sessions(first: 100) { totalCount edges { node { id } } } }"))["sessions"]
    assert listed == {"totalCount": 0, "edges": []}
    assert (await other.gql("{ memory { key } }"))["memory"] == []

    for what, query in NOT_FOUND_OPERATIONS.items():
        error = await other.error(query, {"sid": sid, "rid": run_id})
        assert error["extensions"]["code"] == "NOT_FOUND", (what, error)
        assert "secret" not in error["message"], what

    # Searching everything finds none of the owner's messages.
    assert (await other.gql('{ searchMessages(query: "secret") { snippet } }'))["searchMessages"] == []

    # Subscriptions that name the session (over SSE here) answer NOT_FOUND too.
    for subscription in [
        "subscription($sid: UUID!) { sessionEvents(sessionId: $sid, afterSequence: 0) { __typename } }",
        'subscription($sid: UUID!) { chat(sessionId: $sid, content: "hi") { __typename } }',
    ]:
        resp = await other.post(subscription, {"sid": sid}, Accept="text/event-stream")
        assert resp.status_code == 200 and "secret" not in resp.text
        payloads = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data: {")]
        assert payloads and payloads[0]["data"] is None, resp.text
        assert payloads[0]["errors"][0]["extensions"]["code"] == "NOT_FOUND", resp.text

    # getOrCreateSession with the owner's externalId makes the other user their own session.
    theirs = (
        await other.gql(
            'mutation { getOrCreateSession(externalId: "owned") { id title messageCount state } }'
        )
    )["getOrCreateSession"]
    assert theirs["id"] != sid and theirs["messageCount"] == 0 and theirs["state"] == {}
    # Clearing all of one's memory leaves the owner's alone.
    await other.gql("mutation { clearMemory }")

    after = await api.gql(SNAPSHOT, {"id": sid})
    assert after == before
    run = (await api.gql("query($id: UUID!) { run(id: $id) { id sessionId } }", {"id": run_id}))["run"]
    assert run == {"id": run_id, "sessionId": sid}
    listed = (await api.gql("{ sessions(first: 100) { totalCount edges { node { id } } } }"))["sessions"]
    assert listed == {"totalCount": 1, "edges": [{"node": {"id": sid}}]}


async def test_not_found_is_indistinguishable_from_missing(api: Api, other: Api) -> None:
    """The error for someone else's session reads like the one for a session that never existed."""
    import uuid

    sid, _ = await _owner_world(api)
    missing = str(uuid.uuid4())
    query = NOT_FOUND_OPERATIONS["updateSession"]
    theirs = await other.error(query, {"sid": sid})
    nothing = await other.error(query, {"sid": missing})
    assert theirs["message"].replace(sid, "ID") == nothing["message"].replace(missing, "ID")
