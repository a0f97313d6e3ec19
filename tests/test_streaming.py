"""chat and sessionEvents against real uvicorn processes, over real WebSockets (and SSE)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette

from tests.conftest import Api
from tests.servers import Server, parley_server
from tests.wsclient import CHAT, WATCH, GraphQLWS, SubscriptionError

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def servers(
    database_url: str, app: Starlette, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    tmp = tmp_path_factory.mktemp("streaming")
    with parley_server(database_url, tmp, "a") as a, parley_server(database_url, tmp, "b") as b:
        yield a, b


async def gql(
    server: Server, token: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        resp = await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = resp.json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def agent(admin: Api, model: str) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }", {"i": {"name": name, "model": model}}
    )
    return name


async def session(api: Api, agent_name: str | None = None) -> str:
    data = await api.gql(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
        {"i": {"agentName": agent_name}},
    )
    sid: str = data["createSession"]["id"]
    return sid


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["__typename"] for e in events]


def text_of(events: list[dict[str, Any]]) -> str:
    out = ""
    for e in events:
        if e["__typename"] == "TextSnapshot":
            out = e["text"]
        elif e["__typename"] == "TextDelta":
            out += e["delta"]
    return out


def assert_indexes_increase(events: list[dict[str, Any]]) -> None:
    indexes = [e["index"] for e in events if e["__typename"] in ("TextDelta", "TextSnapshot")]
    assert indexes == sorted(set(indexes)), indexes


async def collect(ws: GraphQLWS, op: str) -> list[dict[str, Any]]:
    return [data[next(iter(data))] async for data in ws.events(op)]


async def test_chat_streams_a_text_run_in_order(servers: tuple[Server, Server], api: Api, admin: Api) -> None:
    a, _ = servers
    sid = await session(api, await agent(admin, "script:fast200"))
    async with GraphQLWS(a.ws_url, api.token) as ws:
        events = await collect(ws, await ws.subscribe(CHAT, {"s": sid, "c": "go"}))
    names = kinds(events)
    assert names[:2] == ["RunStarted", "MessageAdded"] and names[-1] == "RunFinished"
    assert events[1]["message"]["role"] == "USER" and events[1]["message"]["content"] == "go"
    assert set(names[2:-2]) == {"TextDelta"} and names[-2] == "MessageAdded"
    reply = events[-2]["message"]
    assert reply["role"] == "ASSISTANT" and reply["content"] == "".join(f"w{i} " for i in range(200))
    assert text_of(events) == reply["content"] == events[-1]["run"]["reply"]["content"]
    assert_indexes_increase(events)
    assert events[-1]["run"]["status"] == "COMPLETED"
    last_delta = [e for e in events if e["__typename"] == "TextDelta"][-1]
    assert last_delta["index"] == 200  # every model delta counted, however coalesced


async def test_chat_streams_thinking_and_tool_calls(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, _ = servers
    sid = await session(api, await agent(admin, "script:tools"))
    async with GraphQLWS(a.ws_url, api.token) as ws:
        events = await collect(ws, await ws.subscribe(CHAT, {"s": sid, "c": "note the topic"}))
    names = kinds(events)
    assert names[0] == "RunStarted" and names[-1] == "RunFinished"
    assert "ThinkingDelta" in names, names
    started = next(e for e in events if e["__typename"] == "ToolCallStarted")
    finished = next(e for e in events if e["__typename"] == "ToolCallFinished")
    assert started["toolName"] == "save_memory" and started["arguments"]["key"] == "topic"
    assert finished["toolCallId"] == started["toolCallId"] and "saved" in json.dumps(finished["result"])
    assert names.index("ToolCallStarted") < names.index("ToolCallFinished")
    roles = [e["message"]["role"] for e in events if e["__typename"] == "MessageAdded"]
    assert roles == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert text_of(events) == "Saved it."


async def watch_live(server: Server, ws: GraphQLWS, token: str, sid: str) -> str:
    """Subscribe to sessionEvents and wait until it demonstrably receives live events."""
    op = await ws.subscribe(WATCH, {"s": sid})
    add = (
        'mutation($s: UUID!) { addMessages(sessionId: $s, messages: [{role: USER, content: "mark"}]) { id } }'
    )
    marker = (await gql(server, token, add, {"s": sid}))["addMessages"][0]["id"]
    async for data in ws.events(op):
        event = data["sessionEvents"]
        if event["__typename"] == "MessageAdded" and event["message"]["id"] == marker:
            return op
    raise AssertionError("the watcher ended")


async def test_a_watcher_on_another_process_sees_the_whole_run(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, b = servers
    sid = await session(api, await agent(admin, "script:fast200"))
    async with GraphQLWS(b.ws_url, api.token) as watcher, GraphQLWS(a.ws_url, api.token) as chatter:
        watch_op = await watch_live(a, watcher, api.token, sid)  # added on A, seen on B
        seen: list[dict[str, Any]] = []

        async def watch() -> None:
            async for data in watcher.events(watch_op):
                seen.append(data["sessionEvents"])
                if seen[-1]["__typename"] == "RunFinished":
                    return

        task = asyncio.create_task(watch())
        chat_events = await collect(chatter, await chatter.subscribe(CHAT, {"s": sid, "c": "hi"}))
        await asyncio.wait_for(task, 20)
    reply = chat_events[-2]["message"]["content"]
    assert kinds(seen)[0] == "RunStarted" and kinds(seen)[-1] == "RunFinished"
    assert text_of(seen) == reply
    assert [e["message"]["role"] for e in seen if e["__typename"] == "MessageAdded"] == ["USER", "ASSISTANT"]
    assert_indexes_increase(seen)


async def test_large_text_reaches_another_process_intact(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, b = servers
    sid = await session(api, await agent(admin, "script:big"))
    async with GraphQLWS(b.ws_url, api.token) as watcher, GraphQLWS(a.ws_url, api.token) as chatter:
        watch_op = await watch_live(a, watcher, api.token, sid)
        chat_events = await collect(chatter, await chatter.subscribe(CHAT, {"s": sid, "c": "big"}))
        seen = []
        async for data in watcher.events(watch_op):
            seen.append(data["sessionEvents"])
            if seen[-1]["__typename"] == "RunFinished":
                break
    expected = "".join(f"[{i}]" + "x" * 1500 for i in range(6))
    assert text_of(chat_events) == text_of(seen) == expected


async def wait_for_run(server: Server, token: str, sid: str) -> str:
    query = "query($s: UUID!) { session(id: $s) { activeRun { id } } }"
    for _ in range(400):
        data = await gql(server, token, query, {"s": sid})
        if data["session"]["activeRun"]:
            run_id: str = data["session"]["activeRun"]["id"]
            return run_id
        await asyncio.sleep(0.025)  # polling for an observable state, with a deadline
    raise TimeoutError("run did not start")


async def test_joining_mid_run_gets_snapshot_then_the_rest(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, b = servers
    sid = await session(api, await agent(admin, "script:slow"))
    async with GraphQLWS(a.ws_url, api.token) as chatter:
        op = await chatter.subscribe(CHAT, {"s": sid, "c": "count 60"})
        chat_events: list[dict[str, Any]] = []
        async for data in chatter.events(op):
            chat_events.append(data["chat"])
            if text_of(chat_events).count(" ") >= 10:
                break  # the run is well under way
        for server in (b, a):  # joining on another process and on the same one
            async with GraphQLWS(server.ws_url, api.token) as watcher:
                seen = []
                async for data in watcher.events(await watcher.subscribe(WATCH, {"s": sid})):
                    seen.append(data["sessionEvents"])
                    if seen[-1]["__typename"] == "RunFinished":
                        break
            assert kinds(seen)[:2] == ["RunStarted", "TextSnapshot"], kinds(seen)[:3]
            assert seen[1]["text"].startswith("w0 w1 ")
            assert_indexes_increase(seen)
            assert text_of(seen) == "".join(f"w{i} " for i in range(60))
            if server is b:  # the second join needs a run in progress again
                break
    assert seen[-1]["run"]["status"] == "COMPLETED"


async def test_replay_after_a_sequence(servers: tuple[Server, Server], api: Api) -> None:
    a, _ = servers
    sid = await session(api)
    for text in ("one", "two"):
        await api.gql(
            "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id } } }",
            {"s": sid, "c": text},
        )
    async with GraphQLWS(a.ws_url, api.token) as ws:
        op = await ws.subscribe(WATCH, {"s": sid, "a": 1})
        seen = []
        async for data in ws.events(op):
            seen.append(data["sessionEvents"])
            if len(seen) == 3:
                break
    assert [(e["message"]["sequence"], e["message"]["content"]) for e in seen] == [
        (2, "one"),
        (3, "two"),
        (4, "two"),
    ]


async def test_the_run_completes_when_the_client_goes_away(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, _ = servers
    sid = await session(api, await agent(admin, "script:slow"))
    async with GraphQLWS(a.ws_url, api.token) as ws:
        op = await ws.subscribe(CHAT, {"s": sid, "c": "count 30"})
        async for data in ws.events(op):
            if data["chat"]["__typename"] == "TextDelta":
                run_id = data["chat"]["runId"]
                break
    query = "query($r: UUID!) { run(id: $r) { status reply { content } } }"
    for _ in range(400):
        run = (await gql(a, api.token, query, {"r": run_id}))["run"]
        if run["status"] != "RUNNING":
            break
        await asyncio.sleep(0.025)  # polling the run's state with a deadline
    assert run["status"] == "COMPLETED"
    assert run["reply"]["content"] == "".join(f"w{i} " for i in range(30))


async def test_cancel_from_another_process_ends_the_stream(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, b = servers
    sid = await session(api, await agent(admin, "script:slow"))
    async with GraphQLWS(a.ws_url, api.token) as ws:
        op = await ws.subscribe(CHAT, {"s": sid, "c": "count 3000"})
        events: list[dict[str, Any]] = []
        async for data in ws.events(op):
            events.append(data["chat"])
            if data["chat"]["__typename"] == "TextDelta":
                cancelled = await gql(
                    b,
                    api.token,
                    "mutation($r: UUID!) { cancelRun(id: $r) { status } }",
                    {"r": data["chat"]["runId"]},
                )
                assert cancelled["cancelRun"]["status"] == "CANCELLED"
                break
        events += await collect(ws, op)
    assert events[-1]["__typename"] == "RunFinished" and events[-1]["run"]["status"] == "CANCELLED"
    partial = events[-1]["run"]["reply"]["content"]
    assert partial.startswith("w0 ") and partial == text_of(events)[: len(partial)]


async def test_bad_or_missing_token_closes_with_4403(servers: tuple[Server, Server]) -> None:
    a, _ = servers
    for token in ("pk_not-a-token", None):
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            async with GraphQLWS(a.ws_url, token):
                pass
        assert info.value.rcvd is not None and info.value.rcvd.code == 4403


async def test_header_auth_on_the_upgrade_request(servers: tuple[Server, Server], api: Api) -> None:
    a, _ = servers
    sid = await session(api)
    async with GraphQLWS(a.ws_url, api.token, header_auth=True) as ws:
        events = await collect(ws, await ws.subscribe(CHAT, {"s": sid, "c": "via header"}))
    assert events[-1]["run"]["reply"]["content"] == "via header"


async def test_another_users_session_is_not_found(
    servers: tuple[Server, Server], api: Api, other: Api
) -> None:
    a, _ = servers
    sid = await session(api)
    async with GraphQLWS(a.ws_url, other.token) as ws:
        for query, variables in ((WATCH, {"s": sid}), (CHAT, {"s": sid, "c": "hi"})):
            with pytest.raises(SubscriptionError) as info:
                await collect(ws, await ws.subscribe(query, variables))
            assert info.value.code == "NOT_FOUND"


async def test_a_slow_subscriber_does_not_stall_a_fast_one(
    servers: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, _ = servers
    sid = await session(api, await agent(admin, "script:fast200"))
    async with GraphQLWS(a.ws_url, api.token) as slow_ws, GraphQLWS(a.ws_url, api.token) as fast_ws:
        slow_op = await watch_live(a, slow_ws, api.token, sid)
        # The slow subscriber reads nothing while the fast one runs the whole chat.
        fast = await collect(fast_ws, await fast_ws.subscribe(CHAT, {"s": sid, "c": "go"}))
        assert fast[-1]["__typename"] == "RunFinished"
        slow = []
        async for data in slow_ws.events(slow_op):
            slow.append(data["sessionEvents"])
            if slow[-1]["__typename"] == "RunFinished":
                break
    assert text_of(slow) == text_of(fast)
    assert_indexes_increase(slow)


async def test_chat_over_server_sent_events(servers: tuple[Server, Server], api: Api) -> None:
    a, _ = servers
    sid = await session(api)
    events = []
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/graphql",
            json={"query": CHAT, "variables": {"s": sid, "c": "over sse"}},
            headers={"Authorization": f"Bearer {api.token}", "Accept": "text/event-stream"},
        ) as resp:
            assert resp.status_code == 200
            event_name = None
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event_name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event_name == "next":
                    events.append(json.loads(line.split(":", 1)[1])["data"]["chat"])
                if event_name == "complete":
                    break
    assert kinds(events)[0] == "RunStarted" and kinds(events)[-1] == "RunFinished"
    assert text_of(events) == "over sse"


def _unused(_: Path) -> None:  # keep Path import for type hints in fixtures
    pass


async def test_a_retried_chat_with_the_same_key_streams_the_first_run(
    servers: tuple[Server, Server], api: Api
) -> None:
    a, _ = servers
    sid = await session(api)
    async with GraphQLWS(a.ws_url, api.token) as ws:
        first = await collect(ws, await ws.subscribe(CHAT, {"s": sid, "c": "only once", "k": "k1"}))
        again = await collect(ws, await ws.subscribe(CHAT, {"s": sid, "c": "only once", "k": "k1"}))
    assert kinds(again)[0] == "RunStarted" and kinds(again)[-1] == "RunFinished"
    assert again[-1]["run"]["id"] == first[-1]["run"]["id"]
    added = [e["message"]["id"] for e in again if e["__typename"] == "MessageAdded"]
    assert added == [e["message"]["id"] for e in first if e["__typename"] == "MessageAdded"]
    count = await api.gql("query($s: UUID!) { session(id: $s) { messageCount } }", {"s": sid})
    assert count["session"]["messageCount"] == 2
