"""WebSocket rules against real server processes: codes, limits, slow subscribers, endings."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from tests.conftest import Api
from tests.servers import Server, parley_server
from tests.test_cli import parley
from tests.test_streaming import gql, watch_live
from tests.wsclient import WATCH, GraphQLWS, SubscriptionError

pytestmark = pytest.mark.asyncio(loop_scope="session")

MAX_CONNECTIONS = 3


@pytest.fixture(scope="module")
def pair(
    database_url: str, app: Starlette, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    tmp = tmp_path_factory.mktemp("sockets")
    limit = str(MAX_CONNECTIONS)
    with (
        parley_server(database_url, tmp, "sa", PARLEY_MAX_CONNECTIONS_PER_USER=limit) as a,
        parley_server(database_url, tmp, "sb", PARLEY_MAX_CONNECTIONS_PER_USER=limit) as b,
    ):
        yield a, b


async def new_session(api: Api, agent: str | None = None) -> str:
    data = await api.gql(
        "mutation($n: String) { createSession(input: {agentName: $n}) { id } }", {"n": agent}
    )
    return str(data["createSession"]["id"])


async def new_agent(admin: Api, model: str) -> str:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }", {"i": {"name": name, "model": model}}
    )
    return name


async def error_of(ws: GraphQLWS, op: str) -> SubscriptionError:
    with pytest.raises(SubscriptionError) as failed:
        async for _ in ws.events(op):
            pass
    return failed.value


async def test_every_error_on_a_socket_has_a_code(pair: tuple[Server, Server], api: Api, other: Api) -> None:
    a, _ = pair
    sid = await new_session(api)
    async with GraphQLWS(a.ws_url, api.token) as ws:
        for _ in range(20):
            await ws.subscribe(WATCH, {"s": sid})
        over = await ws.subscribe(WATCH, {"s": sid})
        assert (await error_of(ws, over)).code == "BAD_USER_INPUT"
    async with GraphQLWS(a.ws_url, api.token) as ws:
        invalid = await ws.subscribe("subscription { sessionEvents { nope } }")
        assert (await error_of(ws, invalid)).code == "BAD_USER_INPUT"
        theirs = await ws.subscribe(WATCH, {"s": await new_session(other)})
        assert (await error_of(ws, theirs)).code == "NOT_FOUND"
        malformed = await ws.subscribe(WATCH, {"s": "not-a-uuid"})
        assert (await error_of(ws, malformed)).code == "BAD_USER_INPUT"


async def _close_code(ws: ClientConnection) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 15)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def _raw_connect(server: Server, token: str) -> ClientConnection:
    ws = await websockets.connect(
        server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    return ws


async def test_open_sockets_per_user_are_limited_across_processes(
    pair: tuple[Server, Server], api: Api
) -> None:
    a, b = pair
    async with (
        GraphQLWS(a.ws_url, api.token) as first,
        GraphQLWS(b.ws_url, api.token),
        GraphQLWS(a.ws_url, api.token),
    ):
        refused = await _raw_connect(b, api.token)
        assert await _close_code(refused) == 4429
        await first.ws.close()
        # A slot is free again (on whichever process).
        async with GraphQLWS(b.ws_url, api.token):
            pass


async def test_a_subscriber_that_never_reads_is_dropped(
    pair: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, _ = pair
    assert api.token is not None
    sid = await new_session(api, await new_agent(admin, "script:flood"))
    # This client buffers one frame, then stops reading its socket until asked for more.
    async with GraphQLWS(a.ws_url, api.token, max_queue=1) as watcher:
        op = await watch_live(a, watcher, api.token, sid)
        sent = await gql(
            a,
            api.token,
            'mutation($s: UUID!) { sendMessage(sessionId: $s, content: "flood") { run { status } reply { content } } }',
            {"s": sid},
        )
        assert sent["sendMessage"]["run"]["status"] == "COMPLETED"
        total = len(sent["sendMessage"]["reply"]["content"])
        received = 0
        with pytest.raises(SubscriptionError) as dropped:
            async for data in watcher.events(op):
                event = data["sessionEvents"]
                if event["__typename"] == "TextDelta":
                    received += len(event["delta"])
        assert dropped.value.code == "SUBSCRIBER_TOO_SLOW"
        assert received < total


async def test_deleting_a_session_ends_its_subscriptions_on_every_process(
    pair: tuple[Server, Server], api: Api
) -> None:
    a, b = pair
    sid = await new_session(api)
    async with GraphQLWS(a.ws_url, api.token) as on_a, GraphQLWS(b.ws_url, api.token) as on_b:
        assert api.token is not None
        op_a = await watch_live(a, on_a, api.token, sid)
        op_b = await watch_live(b, on_b, api.token, sid)
        assert (await api.gql("mutation($s: UUID!) { deleteSession(id: $s) }", {"s": sid}))["deleteSession"]

        async def ends(ws: GraphQLWS, op: str) -> list[str]:
            return [data["sessionEvents"]["__typename"] async for data in ws.events(op)]

        # Both streams complete (at most the second marker was still on its way to A).
        assert await asyncio.wait_for(ends(on_a, op_a), 15) in ([], ["MessageAdded"])
        assert await asyncio.wait_for(ends(on_b, op_b), 15) == []


async def test_revoke_and_delete_close_the_users_sockets_everywhere(
    pair: tuple[Server, Server], database_url: str, client: httpx.AsyncClient
) -> None:
    a, b = pair
    name = f"gone-{uuid.uuid4().hex[:8]}"
    created = await parley(database_url, "user", "create", name)
    token = created.last_line
    api = Api(client, token, name)
    sid = await new_session(api)

    on_a, on_b = await _raw_connect(a, token), await _raw_connect(b, token)
    for ws in (on_a, on_b):
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    revoked = await parley(database_url, "user", "revoke", name)
    assert revoked.code == 0, revoked.stderr
    assert list(await asyncio.gather(_close_code(on_a), _close_code(on_b))) == [4403, 4403]
    resp = await api.post("{ viewer { name } }")
    assert resp.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    token = (await parley(database_url, "user", "token", name)).last_line
    api = Api(client, token, name)
    assert (await api.gql("query($s: UUID!) { session(id: $s) { id } }", {"s": sid}))["session"]["id"] == sid
    on_a = await _raw_connect(a, token)
    assert json.loads(await asyncio.wait_for(on_a.recv(), 10))["type"] == "connection_ack"
    deleted = await parley(database_url, "user", "delete", name)
    assert deleted.code == 0, deleted.stderr
    assert "1 session" in deleted.stdout
    assert await _close_code(on_a) == 4403
    assert (await api.post("{ viewer { name } }")).json()["errors"][0]["extensions"][
        "code"
    ] == "UNAUTHENTICATED"
    again = await parley(database_url, "user", "delete", name)
    assert again.code == 2 and "not found" in again.stderr
