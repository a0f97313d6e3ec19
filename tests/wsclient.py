"""A minimal graphql-transport-ws client over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

RECV_TIMEOUT_S = 30.0  # no single message may take longer: a hang fails the test, not the run


class GraphQLWS:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        header_auth: bool = False,
        timeout: float = RECV_TIMEOUT_S,
        max_queue: int = 16,
    ) -> None:
        self.url = url
        self.max_queue = max_queue  # frames buffered before the client stops reading the socket
        self.token = token
        self.header_auth = header_auth
        self.timeout = timeout
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> GraphQLWS:
        headers = {"Authorization": f"Bearer {self.token}"} if self.header_auth and self.token else None
        self._ws = await websockets.connect(
            self.url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers=headers,
            max_size=None,
            open_timeout=self.timeout,
            close_timeout=5,
            max_queue=self.max_queue,
        )
        payload = {} if self.header_auth or self.token is None else {"Authorization": f"Bearer {self.token}"}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = await self._recv()
        if ack["type"] != "connection_ack":
            raise RuntimeError(f"expected connection_ack, got {ack}")
        return self

    @property
    def ws(self) -> ClientConnection:
        """The open connection (inside ``async with``)."""
        assert self._ws is not None, "use GraphQLWS in `async with`"
        return self._ws

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def _recv(self) -> dict[str, Any]:
        while True:
            msg: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), self.timeout))
            if msg["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            if msg["type"] == "pong":
                continue
            return msg

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op_id = uuid.uuid4().hex
        await self.ws.send(
            json.dumps(
                {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
            )
        )
        return op_id

    async def events(self, op_id: str) -> AsyncIterator[dict[str, Any]]:
        """`next` payloads of one operation until `complete`; errors are raised."""
        while True:
            msg = await self._recv()
            if msg.get("id") != op_id:
                continue
            if msg["type"] == "next":
                if msg["payload"].get("errors"):
                    raise SubscriptionError(msg["payload"]["errors"])
                yield msg["payload"]["data"]
            elif msg["type"] == "error":
                raise SubscriptionError(msg["payload"])
            elif msg["type"] == "complete":
                return


class SubscriptionError(Exception):
    def __init__(self, errors: Any) -> None:
        super().__init__(errors)
        self.errors = errors

    @property
    def code(self) -> str | None:
        first = self.errors[0] if isinstance(self.errors, list) and self.errors else {}
        return (first.get("extensions") or {}).get("code")


EVENT_FIELDS = """
  __typename
  ... on RunStarted { run { id status } }
  ... on TextDelta { runId index delta }
  ... on TextSnapshot { runId index text }
  ... on ThinkingDelta { runId delta }
  ... on ToolCallStarted { runId toolCallId toolName arguments }
  ... on ToolCallFinished { runId toolCallId toolName result }
  ... on MessageAdded { message { id sequence role content runId toolCalls { id name } toolCallId } }
  ... on RunFinished { run { id status reply { content } error { code } } }
"""

CHAT = (
    "subscription($s: UUID!, $c: String!, $k: String) { chat(sessionId: $s, content: $c, idempotencyKey: $k) {"
    + EVENT_FIELDS
    + "} }"
)
WATCH = (
    "subscription($s: UUID!, $a: Int) { sessionEvents(sessionId: $s, afterSequence: $a) {"
    + EVENT_FIELDS
    + "} }"
)
