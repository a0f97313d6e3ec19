"""The chat page: ``GET /`` and its ES modules under ``/chat/``, all served by Parley itself.

The page is a plain client of the public GraphQL API (``static/chat/*.js``); its libraries are
vendored from npm under ``static/chat/vendor/`` (versions and licences in the README there).
The page is sent with a Content-Security-Policy that lets only these same-origin modules run:
no inline script but the import map (allowed by its hash), no handler attribute, no script,
image or connection to another host. That backs up the page's own sanitizing of message text.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CHAT_DIR: Path = Path(__file__).resolve().parent / "static" / "chat"
_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


@cache
def _page() -> tuple[str, str]:
    """The page and the CSP hash of its one inline script (the import map)."""
    page = (CHAT_DIR / "index.html").read_text()
    found = _IMPORT_MAP.search(page)
    assert found is not None, "index.html lost its import map"
    digest = base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
    return page, f"'sha256-{digest}'"


def _policy(request: Request, import_map: str) -> str:
    # 'self' covers same-origin WebSockets only in newer browsers: name ws:/wss: explicitly.
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
    return (
        "default-src 'none'; "
        f"script-src 'self' {import_map}; "
        "style-src 'self'; "
        "img-src 'self' data: blob:; "
        f"connect-src 'self'{sockets}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


async def chat_page(request: Request) -> Response:
    page, import_map = _page()
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": _policy(request, import_map),
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


class _Assets(StaticFiles):
    """Static files the browser revalidates every time: an upgrade never mixes old and new modules."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def chat_routes() -> list[BaseRoute]:
    """``GET /`` (the page) and ``/chat/`` (its modules, styles and vendored libraries)."""
    return [
        Route("/", chat_page, methods=["GET"]),
        Mount("/chat", app=_Assets(directory=CHAT_DIR), name="chat"),
    ]
