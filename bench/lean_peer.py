"""The lean peer: the anchor every Parley figure is compared with.

A hand-written chat service on Parley's stack and nothing more: Starlette under uvicorn (one
worker, the same loop, HTTP and WebSocket settings as ``parley serve``), pydantic-ai and asyncpg;
no GraphQL, no ORM, no auth. Two plain tables of its own in the bench database (created at
startup): ``peer_sessions`` and ``peer_messages`` (one row per pydantic-ai ModelMessage,
``body jsonb``).

* ``POST /sessions`` -> ``{"id"}``: a new session row.
* ``POST /send {"session", "content"}`` -> ``{"reply"}``: one turn (:func:`turn`).
* ``/graphql`` (WebSocket): just enough ``graphql-transport-ws`` for the bench client:
  ``connection_init`` -> ``connection_ack``; ``subscribe`` (variables ``s`` = session,
  ``c`` = content) runs the same turn and sends every text delta as its own ``next`` message
  shaped like Parley's ``chat`` TextDelta, then a RunFinished-shaped ``next`` and ``complete``.
* ``GET /readyz``: 200 once the pool is open and the tables exist.

The agent's model is the stream function named by ``LEAN_PEER_MODEL``: ``echo`` (the user's
words back, word by word, like Parley's built-in echo model) or a name of
``stream_models.MODELS`` (the same functions Parley's bench agents run).

    LEAN_PEER_MODEL=echo DATABASE_URL=postgres://... python bench/lean_peer.py --port 8123

The bench side (:class:`LeanPeer`, :class:`PeerClient`) is at the end of this file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import _harness as h
import asyncpg
import httpx
import orjson
from pydantic_ai import Agent, AgentRunResultEvent
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from stream_models import MODELS, StreamFunction

log = logging.getLogger("lean_peer")

HISTORY_LIMIT = 100  # Parley's default historyLimit
POOL_SIZE = 20  # Parley's default PARLEY_DB_POOL_SIZE

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_sessions (
    id uuid PRIMARY KEY,
    message_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS peer_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES peer_sessions ON DELETE CASCADE,
    body jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS peer_messages_session ON peer_messages (session_id, id);
"""
# The last HISTORY_LIMIT messages as one JSON array, oldest first: one round trip, one validation.
LOAD = f"""SELECT coalesce(jsonb_agg(body ORDER BY id), '[]')::text
    FROM (SELECT id, body FROM peer_messages WHERE session_id = $1
          ORDER BY id DESC LIMIT {HISTORY_LIMIT}) m"""
APPEND = """INSERT INTO peer_messages (session_id, body)
    SELECT $1, m.body FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS m(body, n) ORDER BY m.n"""
BUMP = """UPDATE peer_sessions SET message_count = message_count + $2, last_activity_at = now()
    WHERE id = $1"""


# --- the model -------------------------------------------------------------------------------


def _prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


async def echo(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    """The user's words back, one delta per word (as Parley's echo model splits them)."""
    for i, word in enumerate(_prompt(messages).split(" ")):
        yield word if i == 0 else " " + word


def stream_function(name: str) -> StreamFunction:
    fn = {"echo": echo, **MODELS}.get(name)
    if fn is None:
        raise SystemExit(f"unknown LEAN_PEER_MODEL {name!r}: echo or one of {sorted(MODELS)}")
    return fn


# --- one turn --------------------------------------------------------------------------------


def _text(event: AgentStreamEvent | AgentRunResultEvent[Any]) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""


async def turn(
    pool: asyncpg.Pool,
    agent: Agent[None, str],
    session_id: uuid.UUID,
    content: str,
    on_text: Callable[[str], Awaitable[None]] | None = None,
) -> str:
    """Load the history, run the agent (``on_text`` gets every text delta), then append the new
    messages and bump the session in one transaction. No connection is held while the model runs."""
    async with pool.acquire() as conn:
        history = ModelMessagesTypeAdapter.validate_json(await conn.fetchval(LOAD, session_id))
    result = None
    async with agent.run_stream_events(content, message_history=history) as events:
        async for event in events:
            if isinstance(event, AgentRunResultEvent):
                result = event.result
            elif on_text is not None and (text := _text(event)):
                await on_text(text)
    if result is None:
        raise RuntimeError("the run ended without a result")
    new = result.new_messages()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(APPEND, session_id, ModelMessagesTypeAdapter.dump_json(new).decode())
        await conn.execute(BUMP, session_id, len(new))
    return result.output


# --- the app ---------------------------------------------------------------------------------


async def _reset(conn: asyncpg.Connection) -> None:
    # As Parley's pool does: nothing is left on a released connection but, maybe, a transaction.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class Peer:
    def __init__(self, database_url: str, model: str) -> None:
        self.database_url = h.asyncpg_url(database_url)
        self.agent: Agent[None, str] = Agent(
            FunctionModel(stream_function=stream_function(model), model_name=model)
        )
        self.pool: asyncpg.Pool | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with asyncpg.create_pool(
            self.database_url, min_size=1, max_size=POOL_SIZE, reset=_reset
        ) as pool:
            await pool.execute(SCHEMA)
            self.pool = pool
            yield

    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "used before startup"
        return self.pool

    async def readyz(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def new_session(self, request: Request) -> JSONResponse:
        sid = uuid.uuid4()
        await self._pool().execute("INSERT INTO peer_sessions (id) VALUES ($1)", sid)
        return JSONResponse({"id": str(sid)})

    async def send(self, request: Request) -> JSONResponse:
        body = await request.json()
        reply = await turn(self._pool(), self.agent, uuid.UUID(body["session"]), body["content"])
        return JSONResponse({"reply": reply})

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept(subprotocol="graphql-transport-ws")
        with contextlib.suppress(WebSocketDisconnect):
            if orjson.loads(await ws.receive_text()).get("type") != "connection_init":
                await ws.close(4400)
                return
            await ws.send_text('{"type":"connection_ack"}')
            for _ in range(1_000_000):  # bounded; a bench connection runs a handful of operations
                msg = orjson.loads(await ws.receive_text())
                if msg.get("type") == "ping":
                    await ws.send_text('{"type":"pong"}')
                elif msg.get("type") == "subscribe":
                    await self._subscription(ws, msg["id"], msg["payload"].get("variables") or {})

    async def _subscription(self, ws: WebSocket, op: str, variables: dict[str, Any]) -> None:
        """The operation runs inline: the bench sends one per connection and never cancels it."""
        run_id = str(uuid.uuid4())
        index = 0

        async def on_text(text: str) -> None:
            nonlocal index
            index += 1
            event = {"__typename": "TextDelta", "runId": run_id, "index": index, "delta": text}
            await ws.send_text(_next(op, event))

        try:
            reply = await turn(self._pool(), self.agent, uuid.UUID(variables["s"]), variables["c"], on_text)
        except WebSocketDisconnect:
            raise
        except Exception as exc:
            log.exception("subscription %s failed", op)
            await ws.send_text(
                orjson.dumps({"id": op, "type": "error", "payload": [{"message": repr(exc)}]}).decode()
            )
            return
        run = {"id": run_id, "status": "COMPLETED", "reply": {"content": reply}, "error": None}
        await ws.send_text(_next(op, {"__typename": "RunFinished", "run": run}))
        await ws.send_text(orjson.dumps({"id": op, "type": "complete"}).decode())


def _next(op: str, event: dict[str, Any]) -> str:
    return orjson.dumps({"id": op, "type": "next", "payload": {"data": {"chat": event}}}).decode()


def create_app() -> Starlette:
    peer = Peer(os.environ["DATABASE_URL"], os.environ.get("LEAN_PEER_MODEL", "echo"))
    return Starlette(
        routes=[
            Route("/readyz", peer.readyz),
            Route("/sessions", peer.new_session, methods=["POST"]),
            Route("/send", peer.send, methods=["POST"]),
            WebSocketRoute("/graphql", peer.websocket),
        ],
        lifespan=peer.lifespan,
    )


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(  # the settings of `parley serve` (loop and HTTP parser: uvicorn's auto = uvloop, httptools)
        create_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )


# --- the bench side --------------------------------------------------------------------------


class LeanPeer(h.Server):
    """The peer as a separate process on a free loopback port, started and stopped like Parley's
    server (``h.Server``: readiness wait, log file, process-group stop). ``model``: LEAN_PEER_MODEL."""

    name = "lean peer"

    def __init__(self, database_url: str, model: str, log_dir: Path | None = None) -> None:
        # stream_models registers its models into the checkout's services.llm, as in Parley's server.
        path = os.pathsep.join([str(h.REPO), os.environ.get("PYTHONPATH", "")])
        super().__init__(database_url, log_dir=log_dir, LEAN_PEER_MODEL=model, PYTHONPATH=path)

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--port", str(self.port)]


class PeerClient:
    """The bench's HTTP client for the peer (the counterpart of ``h.Client`` for Parley)."""

    def __init__(self, base_url: str, connections: int = 32) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def __aenter__(self) -> PeerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            resp = await self.http.post(path, json=body, timeout=h.TURN_TIMEOUT_S)
        except httpx.TimeoutException as exc:
            raise h.Stuck(f"the lean peer did not answer {path} within {h.TURN_TIMEOUT_S:g}s") from exc
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    async def create_session(self) -> str:
        return str((await self._post("/sessions"))["id"])

    async def send_turn(self, session_id: str, content: str) -> float:
        t0 = time.perf_counter()
        await self._post("/send", {"session": session_id, "content": content})
        return time.perf_counter() - t0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
