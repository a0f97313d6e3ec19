"""A scripted OpenAI-compatible Chat Completions server for tests (a real HTTP server, never a real LLM).

It runs a Starlette app under uvicorn in a background thread on 127.0.0.1 with a free port and serves
``POST /v1/chat/completions``, streaming (SSE) and non-streaming. Each request takes the next reply of
the script; every request body is recorded so tests can check what the model was sent.

    server.script(Text("Hel", "lo"), ToolCall("save_memory", {"key": "k"}), Error(), Broken("Hi"))

A request arriving with nothing scripted gets HTTP 400 (not retried by the client) and is counted in
``unscripted``, so a test that makes more model calls than it planned fails visibly. Like OpenAI, the
server also answers 400 to a conversation where an assistant ``tool_calls`` message is not followed by a
``tool`` message for each call; those are listed in ``rejected``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SECRET = "sk-secret-123"


@dataclass(init=False)
class Text:
    """A text answer, streamed as one delta per argument."""

    deltas: tuple[str, ...]
    input_tokens: int = 21
    output_tokens: int = 7

    def __init__(self, *deltas: str, input_tokens: int = 21, output_tokens: int = 7) -> None:
        self.deltas = deltas
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens

    @property
    def text(self) -> str:
        return "".join(self.deltas)


@dataclass
class ToolCall:
    """One function call; its JSON arguments are streamed in ``fragments`` pieces."""

    name: str
    arguments: dict[str, Any]
    call_id: str = "call_1"
    fragments: int = 3
    input_tokens: int = 30
    output_tokens: int = 12


@dataclass
class Error:
    """An HTTP error answer whose body carries a secret that must never reach a Parley client."""

    status: int = 500
    message: str = f"upstream exploded while using key {SECRET}"


@dataclass(init=False)
class Broken:
    """A stream that sends these text deltas, then drops the connection mid-response."""

    deltas: tuple[str, ...]

    def __init__(self, *deltas: str) -> None:
        self.deltas = deltas


Reply = Text | ToolCall | Error | Broken


@dataclass
class Recorded:
    body: dict[str, Any]
    authorization: str | None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def conversation(self) -> list[tuple[str, str]]:
        """(role, text) of each message the model was sent."""
        return [(m["role"], _content(m)) for m in self.messages]

    @property
    def system(self) -> list[str]:
        """The contents of the request's system (or developer) messages."""
        return [_content(m) for m in self.messages if m.get("role") in ("system", "developer")]


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


class _StreamBroken(Exception):
    """Raised inside a streaming response to make uvicorn drop the connection."""


class _QuietBreaks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _StreamBroken))


@dataclass
class FakeOpenAI:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    unscripted: int = 0
    rejected: list[str] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _filter: _QuietBreaks = field(default_factory=_QuietBreaks)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting (from the test thread) ---------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()
            self.rejected.clear()
            self.unscripted = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.replies)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # connections queue up until uvicorn accepts them: no start-up wait needed
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])
        # log_config=None: leave the test process's logging configuration alone.
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(self._filter)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        logging.getLogger("uvicorn.error").removeFilter(self._filter)

    # --- serving (in the server thread) ---------------------------------------------------------

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        problem = _unanswered_tool_calls(body.get("messages", []))
        with self._lock:
            self.requests.append(Recorded(body=body, authorization=request.headers.get("authorization")))
            reply = None
            if problem:
                self.rejected.append(problem)
            elif self.replies:
                reply = self.replies.popleft()
            else:
                self.unscripted += 1
                problem = "fake server: no reply scripted"
        if reply is None:
            return JSONResponse(
                {"error": {"message": problem, "type": "invalid_request_error", "param": None, "code": None}},
                status_code=400,
            )
        if isinstance(reply, Error):
            return JSONResponse(
                {"error": {"message": reply.message, "type": "server_error", "param": None, "code": None}},
                status_code=reply.status,
                headers={"retry-after-ms": "1"},  # the client's retries come at once, not after 0.5 s+
            )
        model = body.get("model", "gpt-4o-mini")
        if not body.get("stream"):
            return JSONResponse(_completion(reply, model))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_sse(reply, model, include_usage), media_type="text/event-stream")

    # --- as a context manager -------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _unanswered_tool_calls(messages: list[dict[str, Any]]) -> str | None:
    """OpenAI's rule: each assistant tool call is answered by a following ``tool`` message."""
    for i, message in enumerate(messages):
        calls = {c.get("id") for c in message.get("tool_calls") or []}
        if message.get("role") != "assistant" or not calls:
            continue
        answered = set()
        for following in messages[i + 1 :]:
            if following.get("role") != "tool":
                break
            answered.add(following.get("tool_call_id"))
        if missing := calls - answered:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding "
                f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(sorted(str(m) for m in missing))}"
            )
    return None


# --- wire format ----------------------------------------------------------------------------------

_counter = iter(range(1, 1_000_000))


def _usage(reply: Text | ToolCall) -> dict[str, int]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _fragments(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, n)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _completion(reply: Text | ToolCall | Broken, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(reply, ToolCall):
        message["tool_calls"] = [
            {
                "id": reply.call_id,
                "type": "function",
                "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
            }
        ]
        finish = "tool_calls"
    else:
        message["content"] = "".join(reply.deltas)
        finish = "stop"
    out: dict[str, Any] = {
        "id": f"chatcmpl-fake-{next(_counter)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
    }
    if isinstance(reply, Text | ToolCall):
        out["usage"] = _usage(reply)
    return out


def _deltas(reply: Text | ToolCall | Broken) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(delta, finish_reason) pairs of a streamed answer, without the usage chunk."""
    if isinstance(reply, ToolCall):
        yield (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": reply.call_id,
                        "type": "function",
                        "function": {"name": reply.name, "arguments": ""},
                    }
                ],
            },
            None,
        )
        for piece in _fragments(json.dumps(reply.arguments), reply.fragments):
            yield {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, None
        yield {}, "tool_calls"
        return
    yield {"role": "assistant", "content": ""}, None
    for delta in reply.deltas:
        yield {"content": delta}, None
    if isinstance(reply, Text):
        yield {}, "stop"


async def _sse(reply: Reply, model: str, include_usage: bool) -> AsyncIterator[str]:
    assert isinstance(reply, Text | ToolCall | Broken)
    base = {
        "id": f"chatcmpl-fake-{next(_counter)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    for delta, finish in _deltas(reply):
        chunk = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        yield f"data: {json.dumps(chunk)}\n\n"
    if isinstance(reply, Broken):
        raise _StreamBroken("fake server: dropping the connection mid-stream")
    if include_usage:
        yield f"data: {json.dumps(dict(base, choices=[], usage=_usage(reply)))}\n\n"
    yield "data: [DONE]\n\n"
