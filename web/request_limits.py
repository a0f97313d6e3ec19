"""Request bodies are refused before they are buffered or parsed when too large or too slow.

An ASGI middleware: a body announced larger than the limit (``Content-Length``) is answered
413 before the app runs; a body that grows past it while it streams in (chunked uploads) is cut
off at the first chunk over the limit, so no more than the limit is ever held. A body that does
not arrive within ``body_timeout_s`` is answered 408. Headers that arrive too slowly are the
HTTP protocol's business (``web/protocol.py``).
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class RequestLimits:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int, body_timeout_s: float
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.body_timeout_s = body_timeout_s

    def _limit(self, scope: Scope) -> tuple[int, str]:
        content_type = _header(scope, b"content-type") or b""
        if content_type.lower().startswith(b"multipart/form-data"):
            # Uploads: the attachment limit plus room for the operations (web/app.py).
            return self.max_upload_bytes, "a multipart request's body (its files and the operations)"
        return self.max_body_bytes, "the request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self._limit(scope)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, 413, f"{what} is larger than {limit} bytes")
            return
        received = 0
        body_done = False
        started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # e.g. a streaming response waiting for the client to go away
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError as exc:
                raise _TooSlow from exc
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, f"{what} is larger than {limit} bytes")
        except _TooSlow:
            if not started:
                await _refuse(send, 408, f"the request body did not arrive within {self.body_timeout_s:g} s")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    code = "BAD_USER_INPUT"
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
