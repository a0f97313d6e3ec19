"""addMessages, message pages (keyset both ways) and Session.history as pydantic-ai history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pydantic_ai.messages import (
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from tests.conftest import Api
from tests.helpers import ADD_MESSAGES, add_messages, assistant, create_session, get_session, tool, user

PAGE = """
query($sid: UUID!, $first: Int, $after: String, $last: Int, $before: String) {
  messages(sessionId: $sid, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { sequence content } }
  }
}
"""

SESSION_PAGE = """
query($id: UUID!, $first: Int, $after: String, $last: Int, $before: String, $roles: [MessageRole!]) {
  session(id: $id) {
    messages(first: $first, after: $after, last: $last, before: $before, roles: $roles) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { sequence role content } }
    }
  }
}
"""

WEATHER = [
    {"role": "SYSTEM", "content": "Answer briefly."},
    user("What's the weather in Paris and Rome?"),
    assistant(
        "",
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_2", "name": "get_weather", "arguments": {"city": "Rome"}},
    ),
    tool("call_1", "sunny, 24°C"),
    tool("call_2", "rain, 17°C", name="weather_lookup"),
    assistant("Paris is sunny; Rome is rainy."),
]


async def test_add_messages_all_roles(api: Api) -> None:
    s = await create_session(api)
    msgs = await add_messages(api, s["id"], *WEATHER)
    assert [m["sequence"] for m in msgs] == [1, 2, 3, 4, 5, 6]
    assert [m["role"] for m in msgs] == ["SYSTEM", "USER", "ASSISTANT", "TOOL", "TOOL", "ASSISTANT"]
    assert all(m["sessionId"] == s["id"] for m in msgs)
    call = msgs[2]
    assert call["content"] == ""
    assert call["toolCalls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_2", "name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    # toolName is inferred from the call when omitted, kept when given.
    assert (msgs[3]["toolCallId"], msgs[3]["toolName"], msgs[3]["content"]) == (
        "call_1",
        "get_weather",
        "sunny, 24°C",
    )
    assert (msgs[4]["toolCallId"], msgs[4]["toolName"]) == ("call_2", "weather_lookup")
    assert msgs[5]["content"] == "Paris is sunny; Rome is rainy." and msgs[5]["toolCalls"] == []
    assert msgs[1]["usage"] is None and msgs[1]["runId"] is None and msgs[1]["metadata"] == {}

    session = await get_session(api, s["id"])
    assert session["messageCount"] == 6
    assert session["title"] == "What's the weather in Paris and Rome?"

    # Sequences continue across calls.
    more = await add_messages(api, s["id"], user("thanks"), assistant("you're welcome"))
    assert [m["sequence"] for m in more] == [7, 8]


async def test_tool_message_answers_a_call_from_an_earlier_call(api: Api) -> None:
    s = await create_session(api)
    await add_messages(
        api, s["id"], user("time?"), assistant("", {"id": "t1", "name": "clock", "arguments": None})
    )
    (answer,) = await add_messages(api, s["id"], tool("t1", "12:00"))
    assert (answer["toolName"], answer["sequence"]) == ("clock", 3)


async def test_metadata_is_kept(api: Api) -> None:
    s = await create_session(api)
    (m,) = await add_messages(api, s["id"], {"role": "USER", "content": "hi", "metadata": {"client": "ios"}})
    assert m["metadata"] == {"client": "ios"}


async def test_concurrent_add_messages_get_distinct_sequences(api: Api) -> None:
    s = await create_session(api)
    results = await asyncio.gather(*(add_messages(api, s["id"], user(f"m{i}")) for i in range(10)))
    seqs = sorted(r[0]["sequence"] for r in results)
    assert seqs == list(range(1, 11))
    assert (await get_session(api, s["id"]))["messageCount"] == 10


async def test_history_is_valid_pydantic_ai_history(api: Api) -> None:
    s = await create_session(api)
    await add_messages(api, s["id"], *WEATHER)
    data = await api.gql("query($id: UUID!) { session(id: $id) { history } }", {"id": s["id"]})
    history = ModelMessagesTypeAdapter.validate_python(data["session"]["history"])

    kinds = [type(m) for m in history]
    assert kinds == [ModelRequest, ModelRequest, ModelResponse, ModelRequest, ModelResponse]
    system, prompt, calls, returns, answer = history
    assert isinstance(system.parts[0], SystemPromptPart) and system.parts[0].content == "Answer briefly."
    assert isinstance(prompt.parts[0], UserPromptPart)
    assert prompt.parts[0].content == "What's the weather in Paris and Rome?"

    assert all(isinstance(p, ToolCallPart) for p in calls.parts)
    call_parts = [p for p in calls.parts if isinstance(p, ToolCallPart)]  # all of them (for the types)
    assert [(p.tool_call_id, p.tool_name, p.args_as_dict()) for p in call_parts] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_weather", {"city": "Rome"}),
    ]
    # Consecutive TOOL messages are one request, as a model run produces them.
    assert len(returns.parts) == 2 and all(isinstance(p, ToolReturnPart) for p in returns.parts)
    return_parts = [p for p in returns.parts if isinstance(p, ToolReturnPart)]  # all of them (for the types)
    assert [(p.tool_call_id, p.tool_name, p.content) for p in return_parts] == [
        ("call_1", "get_weather", "sunny, 24°C"),
        ("call_2", "weather_lookup", "rain, 17°C"),
    ]
    assert (
        isinstance(answer.parts[0], TextPart) and answer.parts[0].content == "Paris is sunny; Rome is rainy."
    )

    # Round trip: what validates dumps back to the same JSON.
    assert ModelMessagesTypeAdapter.dump_python(history, mode="json") == data["session"]["history"]


async def test_history_of_empty_session(api: Api) -> None:
    s = await create_session(api)
    data = await api.gql("query($id: UUID!) { session(id: $id) { history } }", {"id": s["id"]})
    assert data["session"]["history"] == []


async def _seven(api: Api) -> str:
    s = await create_session(api)
    await add_messages(
        api,
        s["id"],
        user("1"),
        assistant("2"),
        user("3"),
        assistant("4"),
        user("5"),
        assistant("6"),
        user("7"),
    )
    sid: str = s["id"]
    return sid


async def test_messages_forward_pages(api: Api) -> None:
    sid = await _seven(api)

    async def page(**kw: Any) -> dict[str, Any]:
        found: dict[str, Any] = (await api.gql(PAGE, {"sid": sid, **kw}))["messages"]
        return found

    p1 = await page(first=3)
    assert [e["node"]["sequence"] for e in p1["edges"]] == [1, 2, 3]
    assert p1["totalCount"] == 7
    assert (p1["pageInfo"]["hasNextPage"], p1["pageInfo"]["hasPreviousPage"]) == (True, False)
    assert p1["pageInfo"]["endCursor"] == p1["edges"][-1]["cursor"]
    p2 = await page(first=3, after=p1["pageInfo"]["endCursor"])
    assert [e["node"]["sequence"] for e in p2["edges"]] == [4, 5, 6]
    assert (p2["pageInfo"]["hasNextPage"], p2["pageInfo"]["hasPreviousPage"]) == (True, True)
    p3 = await page(first=3, after=p2["pageInfo"]["endCursor"])
    assert [e["node"]["sequence"] for e in p3["edges"]] == [7]
    assert (p3["pageInfo"]["hasNextPage"], p3["pageInfo"]["hasPreviousPage"]) == (False, True)

    default = await page()
    assert [e["node"]["sequence"] for e in default["edges"]] == [1, 2, 3, 4, 5, 6, 7]
    assert default["pageInfo"]["hasNextPage"] is False


async def test_messages_backward_pages(api: Api) -> None:
    sid = await _seven(api)

    async def page(**kw: Any) -> dict[str, Any]:
        found: dict[str, Any] = (await api.gql(PAGE, {"sid": sid, **kw}))["messages"]
        return found

    p1 = await page(last=3)
    # The newest messages, oldest first within the page.
    assert [e["node"]["sequence"] for e in p1["edges"]] == [5, 6, 7]
    assert [e["node"]["content"] for e in p1["edges"]] == ["5", "6", "7"]
    assert (p1["pageInfo"]["hasPreviousPage"], p1["pageInfo"]["hasNextPage"]) == (True, False)
    assert p1["pageInfo"]["startCursor"] == p1["edges"][0]["cursor"]
    p2 = await page(last=3, before=p1["pageInfo"]["startCursor"])
    assert [e["node"]["sequence"] for e in p2["edges"]] == [2, 3, 4]
    assert (p2["pageInfo"]["hasPreviousPage"], p2["pageInfo"]["hasNextPage"]) == (True, True)
    p3 = await page(last=3, before=p2["pageInfo"]["startCursor"])
    assert [e["node"]["sequence"] for e in p3["edges"]] == [1]
    assert (p3["pageInfo"]["hasPreviousPage"], p3["pageInfo"]["hasNextPage"]) == (False, True)
    assert p3["totalCount"] == 7

    everything = await page(last=7)
    assert [e["node"]["sequence"] for e in everything["edges"]] == [1, 2, 3, 4, 5, 6, 7]
    assert everything["pageInfo"]["hasPreviousPage"] is False


async def test_session_messages_pages_and_roles(api: Api) -> None:
    sid = await _seven(api)

    async def page(**kw: Any) -> dict[str, Any]:
        found: dict[str, Any] = (await api.gql(SESSION_PAGE, {"id": sid, **kw}))["session"]["messages"]
        return found

    fwd = await page(first=2)
    assert [e["node"]["sequence"] for e in fwd["edges"]] == [1, 2]
    nxt = await page(first=2, after=fwd["pageInfo"]["endCursor"])
    assert [e["node"]["sequence"] for e in nxt["edges"]] == [3, 4]
    back = await page(last=2)
    assert [e["node"]["sequence"] for e in back["edges"]] == [6, 7]
    prev = await page(last=2, before=back["pageInfo"]["startCursor"])
    assert [e["node"]["sequence"] for e in prev["edges"]] == [4, 5]

    users = await page(roles=["USER"])
    assert [e["node"]["sequence"] for e in users["edges"]] == [1, 3, 5, 7]
    assert {e["node"]["role"] for e in users["edges"]} == {"USER"}
    assert users["totalCount"] == 4
    last_users = await page(roles=["USER"], last=2)
    assert [e["node"]["sequence"] for e in last_users["edges"]] == [5, 7]
    assert last_users["pageInfo"]["hasPreviousPage"] is True
    more = await page(roles=["USER"], last=2, before=last_users["pageInfo"]["startCursor"])
    assert [e["node"]["sequence"] for e in more["edges"]] == [1, 3]
    assert more["pageInfo"]["hasPreviousPage"] is False
    both = await page(roles=["ASSISTANT", "USER"], first=100)
    assert both["totalCount"] == 7


async def test_message_page_arguments(api: Api) -> None:
    sid = await _seven(api)
    assert await api.code(PAGE, {"sid": sid, "first": 101}) == "BAD_USER_INPUT"
    assert await api.code(PAGE, {"sid": sid, "last": 101}) == "BAD_USER_INPUT"
    assert await api.code(PAGE, {"sid": sid, "first": 1, "last": 1}) == "BAD_USER_INPUT"
    assert await api.code(PAGE, {"sid": sid, "after": "garbage"}) == "BAD_USER_INPUT"
    assert await api.code(SESSION_PAGE, {"id": sid, "first": 500}) == "BAD_USER_INPUT"
    assert await api.code(PAGE, {"sid": str(uuid.uuid4())}) == "NOT_FOUND"


async def test_bad_messages_are_rejected_whole(api: Api) -> None:
    s = await create_session(api)
    sid = s["id"]
    await add_messages(api, sid, user("hi"), assistant("", {"id": "c1", "name": "f", "arguments": {}}))
    bad = {
        "TOOL without toolCallId": [{"role": "TOOL", "content": "x"}],
        "toolCallId answering no call": [tool("nope", "x")],
        "empty user content": [user("")],
        "blank user content": [user("   \n ")],
        "missing user content": [{"role": "USER"}],
        "empty assistant": [assistant("")],
        "toolCallId on a user message": [{"role": "USER", "content": "x", "toolCallId": "c1"}],
        "toolCalls on a user message": [
            {"role": "USER", "content": "x", "toolCalls": [{"id": "c9", "name": "f"}]}
        ],
        "content over the limit": [user("x" * 32001)],
        "valid then invalid": [user("fine"), tool("nope", "x")],
        "no messages": [],
        "metadata not an object": [{"role": "USER", "content": "x", "metadata": [1]}],
    }
    for what, messages in bad.items():
        assert await api.code(ADD_MESSAGES, {"sid": sid, "messages": messages}) == "BAD_USER_INPUT", what
    # Nothing of a rejected call was stored.
    after = await get_session(api, sid)
    assert after["messageCount"] == 2
    (ok,) = await add_messages(api, sid, user("x" * 32000))
    assert ok["sequence"] == 3
    assert await api.code(ADD_MESSAGES, {"sid": str(uuid.uuid4()), "messages": [user("x")]}) == "NOT_FOUND"
