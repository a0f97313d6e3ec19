"""Oversized and slow requests: refused before they are buffered, parsed or allowed to linger."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from tests.conftest import Api
from tests.servers import Server, parley_server

LIMIT = 1_048_576  # PARLEY_MAX_BODY_BYTES's default


def big_body(size: int) -> bytes:
    return json.dumps({"query": "{ viewer { name } }", "variables": {"pad": "x" * size}}).encode()


@pytest.mark.parametrize("with_token", [True, False])
async def test_a_body_over_the_limit_is_413_before_parsing(api: Api, with_token: bool) -> None:
    headers = {"Content-Type": "application/json"}
    if with_token:
        headers["Authorization"] = f"Bearer {api.token}"
    resp = await api.client.post("/graphql", content=big_body(LIMIT + 10), headers=headers)
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # Just under the limit is still a normal request.
    ok = await api.client.post("/graphql", content=big_body(LIMIT - 500), headers=headers)
    assert ok.status_code in (200, 401)


async def test_a_chunked_body_is_cut_off_at_the_limit(api: Api) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 4 MiB offered in 64 KiB chunks, without a Content-Length
            sent += 65536
            yield b" " * 65536

    resp = await api.client.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    # The server stopped reading at the first chunk over the limit.
    assert sent <= LIMIT + 2 * 65536


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with parley_server(
        database_url,
        tmp_path_factory.mktemp("limits"),
        "limits",
        PARLEY_HTTP_HEADER_TIMEOUT="1",
        PARLEY_HTTP_BODY_TIMEOUT="1",
        PARLEY_HTTP_KEEPALIVE_TIMEOUT="1",
    ) as srv:
        yield srv


def _raw(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


async def test_slow_headers_are_cut_off(server: Server) -> None:
    def slowloris() -> tuple[bytes, float]:
        with _raw(server) as sock:
            sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")  # ... and never the rest
            return _read_until_closed(sock)

    data, waited = await asyncio.to_thread(slowloris)
    assert data.startswith(b"HTTP/1.1 408")
    assert waited < 5


async def test_a_silent_connection_is_closed(server: Server) -> None:
    def silent() -> tuple[bytes, float]:
        with _raw(server) as sock:
            return _read_until_closed(sock)

    data, waited = await asyncio.to_thread(silent)
    assert data.startswith(b"HTTP/1.1 408")
    assert waited < 5


async def test_a_slow_body_is_cut_off(server: Server) -> None:
    def slow_body() -> tuple[bytes, float]:
        with _raw(server) as sock:
            sock.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            return _read_until_closed(sock)

    data, waited = await asyncio.to_thread(slow_body)
    assert b" 408 " in data.split(b"\r\n", 1)[0]
    assert waited < 5


async def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    def idle_after_a_request() -> tuple[bytes, float]:
        with _raw(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            return _read_until_closed(sock)

    data, waited = await asyncio.to_thread(idle_after_a_request)
    assert data.startswith(b"HTTP/1.1 200")
    assert waited < 5


async def test_a_websocket_message_over_the_limit_closes_1009(server: Server, api: Api) -> None:
    async with websockets.connect(
        server.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10, close_timeout=5
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {api.token}"}})
        )
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "ping", "payload": {"pad": "x" * (LIMIT + 10)}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_the_server_still_serves_after_the_abuse(server: Server, api: Api) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        resp = await client.post(
            "/graphql",
            json={"query": "{ viewer { name } }"},
            headers={"Authorization": f"Bearer {api.token}"},
        )
    body: dict[str, Any] = resp.json()
    assert body["data"]["viewer"]["name"] == api.name
