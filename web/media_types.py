"""GraphQL over HTTP by the spec: the response media type comes from ``Accept``, the status from it.

``POST /graphql`` answers in the media type the client ranks highest (q-values, the most
specific media range first, as RFC 9110 content negotiation says):

- ``application/json``, also for no ``Accept``, ``*/*`` and ``application/*``: the legacy
  type; a well-formed request is answered 200 whatever its GraphQL errors (``"data": null``
  for a request error), as Parley always did.
- ``application/graphql-response+json``: a request error (the document does not parse or
  validate, the variables cannot be coerced, no valid token) is answered 4xx with no ``data``
  entry; a response with ``data`` (field errors included) is 200.
- ``text/event-stream``, named explicitly: subscriptions over Server-Sent Events (Strawberry's).
- none of these acceptable: 406.

A body that is not a GraphQL request is 400 in every media type. Every error body keeps
Parley's shape: ``{"errors": [{"message", "extensions": {"code"}}]}``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, TypeVar

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
EVENT_STREAM = "text/event-stream"

CONTENT_TYPES = {GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8", JSON: JSON}

# Equally acceptable offers, most preferred last. Named explicitly: text/event-stream keeps
# meaning SSE, and the spec's own type beats the legacy one. Through a wildcard (*/*,
# application/*): application/json, the spec's default for legacy clients. A wildcard never
# selects text/event-stream: streaming is asked for by name.
_EXACT_PREFERENCE = (JSON, GRAPHQL_RESPONSE, EVENT_STREAM)
_WILDCARD_PREFERENCE = (GRAPHQL_RESPONSE, JSON)
_UTF8 = {"utf-8", "utf8"}
_CACHED_ACCEPT_CHARS = 256  # longer `Accept` values are negotiated afresh, never kept

# A request error's status by its code (the first error's); any other code is 400.
_STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "RATE_LIMITED": 429,
    "INTERNAL_SERVER_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}

ContextT = TypeVar("ContextT")
RootValueT = TypeVar("RootValueT")


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """The ``(media range, q)`` pairs of an ``Accept`` value; malformed ones are left out."""
    ranges = []
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        kind, slash, subtype = media.partition("/")
        if not (kind and slash and subtype) or "/" in subtype:
            continue
        q, refused = 1.0, False
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"').lower()
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    refused = True
                break  # what follows q is an accept-extension, not a media type parameter
            if key == "charset" and value not in _UTF8:
                refused = True  # Parley writes UTF-8 only
        if not refused and 0 <= q <= 1:
            ranges.append((media, q))
    return ranges


def _specificity(media_range: str, offer: str) -> int | None:
    """2 for the offer itself, 1 for ``type/*``, 0 for ``*/*``; None when it does not match."""
    if media_range == offer:
        return 2
    if offer == EVENT_STREAM:
        return None
    if media_range == offer.partition("/")[0] + "/*":
        return 1
    if media_range == "*/*":
        return 0
    return None


def negotiate(accept: str | None) -> str | None:
    """The media type to answer a POST in, or None when ``Accept`` allows none of them (406)."""
    if accept is None or not accept.strip():
        return JSON
    if len(accept) <= _CACHED_ACCEPT_CHARS:  # clients send the same few headers over and over
        return _negotiate_cached(accept)
    return _negotiate(accept)


def _negotiate(accept: str) -> str | None:
    ranges = _media_ranges(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for offer in _EXACT_PREFERENCE:
        # The most specific range naming the offer gives its quality (the highest q among equals).
        matches = [(s, q) for media, q in ranges if (s := _specificity(media, offer)) is not None]
        if not matches:
            continue
        specificity, q = max(matches)
        preference = (_EXACT_PREFERENCE if specificity == 2 else _WILDCARD_PREFERENCE).index(offer)
        key = (q, specificity, preference)
        if q > 0 and (best is None or key > best):
            best, chosen = key, offer
    return chosen


_negotiate_cached = lru_cache(maxsize=128)(_negotiate)


def _media_of(headers: Any) -> str | None:
    return negotiate(headers.get("accept"))


def is_request_error(result: ExecutionResult) -> bool:
    """Nothing was executed: parsing, validation, variables or the token failed.

    A field error always has a path, even when it nulls the whole ``data``.
    """
    if result.data is not None or not result.errors:
        return False
    return all(error.path is None for error in result.errors)


def request_error_status(errors: list[object]) -> tuple[int, dict[str, str]]:
    """The status (and headers) of a response that has no ``data`` entry."""
    first = errors[0] if errors else None
    extensions = first.get("extensions") if isinstance(first, dict) else None
    extensions = extensions if isinstance(extensions, dict) else {}
    status = _STATUS.get(str(extensions.get("code")), 400)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = extensions.get("retryAfter")
    if status == 429 and isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(int(retry_after), 0))
    return status, headers


def error_response(status: int, message: str, media_type: str = JSON) -> Response:
    """A request refused before any GraphQL ran, in Parley's error shape and no ``data``."""
    body = {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type=CONTENT_TYPES.get(media_type, JSON),
    )


class GraphQLOverHTTP(GraphQL[ContextT, RootValueT]):
    """Strawberry's ASGI view, with the media types and status codes of the GraphQL-over-HTTP spec.

    Strawberry 0.341 answers ``application/json`` with status 200 to every GraphQL request and a
    plain-text 400 to a body that is not one; this view negotiates the response type of each
    POST and gives ``application/graphql-response+json`` its status codes.
    """

    # Strawberry's `run` is overloaded per request kind; this one signature serves both kinds.
    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response | WebSocket:
        if not isinstance(request, Request) or request.method != "POST":
            return await super().run(request, context, root_value)
        media = _media_of(request.headers)
        if media is None:
            return error_response(
                406,
                f"`Accept` allows no media type Parley answers in: ask for {GRAPHQL_RESPONSE} or {JSON} "
                f"({EVENT_STREAM} for subscriptions)",
            )
        try:
            response = await super().run(request, context, root_value)
        except HTTPException as exc:  # a body that is not a GraphQL request (Strawberry's reason)
            return error_response(exc.status_code, exc.reason, media)
        if media == GRAPHQL_RESPONSE and response.headers.get("content-type") == JSON:
            response.headers["content-type"] = CONTENT_TYPES[GRAPHQL_RESPONSE]
        return response

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        # Strawberry streams whenever `Accept` names text/event-stream, whatever its q-value;
        # here the negotiated type decides.
        if isinstance(data, GraphQLRequestData) and data.protocol == "sse":
            if _media_of(request.headers) != EVENT_STREAM:
                data.protocol = "http"
        return data

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if _media_of(request.headers) == GRAPHQL_RESPONSE and is_request_error(result):
            response.pop("data", None)  # the spec: no data entry, so a 4xx status (create_response)
        return response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if isinstance(response_data, dict) and "data" not in response_data:
            status, headers = request_error_status(response_data.get("errors") or [])
            response.status_code = status
            response.headers.update(headers)
        return response
