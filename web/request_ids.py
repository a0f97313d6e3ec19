"""Every request and WebSocket gets an id: in its log lines and trace span, and in its response.

The id is the client's (or proxy's) ``X-Request-ID`` when that is a plain token, else a new
one; it goes back as the ``X-Request-ID`` response header (on a WebSocket, on its upgrade
response). With JSON logs this also writes the access line, in place of uvicorn's: method,
path without its query string, status and duration, so no query string reaches the log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import telemetry

HEADER = b"x-request-id"
_SAFE = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
log = logging.getLogger("parley.access")


class RequestIds:
    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        telemetry.begin(request_id)
        header = (HEADER, request_id.encode())
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._log(scope, status, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope.get("method", "WEBSOCKET")
        figures: dict[str, Any] = {
            "method": method,
            "path": scope.get("path", ""),
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        }
        log.info("%s %s %s", method, figures["path"], status, extra={"figures": figures})


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER and _SAFE.match(value):
            return str(value.decode())
    return None
