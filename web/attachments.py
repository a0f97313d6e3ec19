"""``GET /attachments/{id}``: an attachment's bytes, streamed to its owner only.

Someone else's attachment, a missing one and a malformed id all answer 404, alike. The bytes go
out as stored, with the type decided at upload, ``X-Content-Type-Options: nosniff`` (a browser
never second-guesses it), ``Content-Disposition: attachment`` with a filename made safe for the
header, and a Content-Security-Policy that lets nothing in the file run should a browser render it.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services import attachments, users
from services.errors import ParleyError
from services.settings import Settings

_STATUS = {"UNAUTHENTICATED": 401, "SERVICE_UNAVAILABLE": 503}
_NOT_ASCII_SAFE = re.compile(r"[^A-Za-z0-9 !#$%&\'()*+,\-.^_`{|}~]")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name in RFC 5987 form."""
    fallback = _NOT_ASCII_SAFE.sub("_", filename).strip() or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def attachment_routes(settings: Settings) -> list[Route]:
    async def download(request: Request) -> Response:
        try:
            user = await users.authenticate(request.headers.get("authorization"), settings)
            try:
                attachment_id = uuid.UUID(request.path_params["attachment_id"])
            except ValueError:
                found = None
            else:
                found = await attachments.find(user, attachment_id)
        except ParleyError as exc:
            return _error(_STATUS.get(exc.code, 400), exc.code, exc.message)
        if found is None:
            return _error(404, "NOT_FOUND", "no such attachment")
        media_type = found.media_type
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        return StreamingResponse(
            attachments.chunks(found.id, found.size),
            media_type=media_type,
            headers={
                "Content-Length": str(found.size),
                "Content-Disposition": content_disposition(found.filename),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=3600",
            },
        )

    return [Route("/attachments/{attachment_id}", download, methods=["GET"])]
