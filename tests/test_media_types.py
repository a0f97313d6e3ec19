"""GraphQL over HTTP by the spec: the response media type, the status codes and Parley's error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from web.media_types import EVENT_STREAM, GRAPHQL_RESPONSE, JSON, negotiate, request_error_status

GRAPHQL_RESPONSE_CT = "application/graphql-response+json; charset=utf-8"


@dataclass(frozen=True)
class Case:
    """One request, and what each media type must answer to it."""

    name: str
    body: dict[str, Any] | bytes
    code: str | None  # the first error's extensions.code; None: no error
    json_status: int = 200
    graphql_response_status: int = 200
    executed: bool = True  # a GraphQL response with `data` (possibly null)
    graphql: bool = True  # a well-formed GraphQL request (else: 400 everywhere, no data)
    token: bool = True


CASES = [
    Case("success", {"query": "{ viewer { name } }"}, None),
    Case("field error, partial data", {"query": "{ viewer { name } session { id } }"}, "BAD_USER_INPUT"),
    # A non-null root field failing nulls `data`: still a field error, still executed.
    Case("field error, data null", {"query": "{ sessions(first: 1000) { totalCount } }"}, "BAD_USER_INPUT"),
    Case("parse error", {"query": "{ viewer { name }"}, "BAD_USER_INPUT", 200, 400, executed=False),
    Case(
        "validation error", {"query": "{ viewer { nickname } }"}, "BAD_USER_INPUT", 200, 400, executed=False
    ),
    Case(
        "variable coercion error",
        {"query": "query($id: UUID!) { session(id: $id) { id } }", "variables": {"id": None}},
        "BAD_USER_INPUT",
        200,
        400,
        executed=False,
    ),
    Case(
        "unauthenticated",
        {"query": "{ viewer { name } }"},
        "UNAUTHENTICATED",
        200,
        401,
        executed=False,
        token=False,
    ),
    Case(
        "several operations, none named",
        {"query": "query A { viewer { name } } query B { viewer { isAdmin } }"},
        "BAD_USER_INPUT",
        200,
        400,
        executed=False,
    ),
    Case(
        "several operations, one named",
        {"query": "query B { viewer { isAdmin } } query A { viewer { name } }", "operationName": "A"},
        None,
    ),
    Case("malformed JSON body", b'{"query": "{ viewer', "BAD_USER_INPUT", 400, 400, False, False),
    Case("missing query", {"variables": {}}, "BAD_USER_INPUT", 400, 400, False, False),
    Case("query not a string", {"query": 5}, "BAD_USER_INPUT", 400, 400, False, False),
]

# Accept header -> (media type answered, exact Content-Type)
MEDIA = {
    None: (JSON, "application/json"),
    JSON: (JSON, "application/json"),
    "*/*": (JSON, "application/json"),
    GRAPHQL_RESPONSE: (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE_CT),
}


async def _post(api: Api, case: Case, accept: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if case.token:
        headers["Authorization"] = f"Bearer {api.token}"
    if accept is not None:
        headers["Accept"] = accept
    if isinstance(case.body, bytes):
        return await api.client.post("/graphql", content=case.body, headers=headers)
    return await api.client.post("/graphql", json=case.body, headers=headers)


@pytest.mark.parametrize("accept", list(MEDIA), ids=[str(a) for a in MEDIA])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_status_and_media_type(api: Api, case: Case, accept: str | None) -> None:
    media, content_type = MEDIA[accept]
    resp = await _post(api, case, accept)
    body = resp.json()
    assert resp.headers["content-type"] == content_type, resp.headers
    expected = case.json_status if media == JSON else case.graphql_response_status
    assert resp.status_code == expected, body
    if case.code is None:
        assert "errors" not in body and body["data"] == {"viewer": {"name": api.name}}
        return
    assert body["errors"][0]["extensions"]["code"] == case.code, body
    assert all(e["extensions"]["code"] for e in body["errors"]), body
    if not case.graphql:
        assert "data" not in body  # not a GraphQL request: nothing was executed in any media type
    elif case.executed:
        assert "data" in body and resp.status_code == 200  # field errors stay 200 with data
    elif media == JSON:
        assert body["data"] is None  # the legacy answer to a request error: 200 with `"data": null`
    else:
        assert "data" not in body  # the spec: a request error has no data entry, hence 4xx
    if case.code == "UNAUTHENTICATED" and media == GRAPHQL_RESPONSE:
        assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/xml", "application/json;q=0", "*/*;q=0", "text/*", "image/png, text/plain"],
)
async def test_an_accept_parley_cannot_satisfy_is_406(api: Api, accept: str) -> None:
    resp = await api.post("{ viewer { name } }", Accept=accept)
    assert resp.status_code == 406, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert GRAPHQL_RESPONSE in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        # The RECOMMENDED client header: the spec's type first.
        (f"{GRAPHQL_RESPONSE}; charset=utf-8, {JSON}; charset=utf-8", GRAPHQL_RESPONSE_CT),
        (f"{JSON};q=0.9, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE_CT),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", "application/json"),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE_CT),  # equal q: the spec's type
        (f"{JSON};q=0, */*", GRAPHQL_RESPONSE_CT),  # the most specific range decides
        (f"{GRAPHQL_RESPONSE};q=0.4, */*;q=0.5", "application/json"),
        ("application/*", "application/json"),
        # A lower-ranked text/event-stream does not turn a query into a stream.
        (f"{JSON}, {EVENT_STREAM};q=0.5", "application/json"),
    ],
)
async def test_q_values_choose_the_media_type(api: Api, accept: str, content_type: str) -> None:
    resp = await api.post("{ viewer { name } }", Accept=accept)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == content_type
    assert resp.json() == {"data": {"viewer": {"name": api.name}}}
    bad = await api.post("{ viewer { name }", Accept=accept)
    assert bad.headers["content-type"] == content_type
    assert bad.status_code == (400 if content_type == GRAPHQL_RESPONSE_CT else 200)


async def test_event_stream_still_means_sse(api: Api) -> None:
    for accept in (EVENT_STREAM, f"{EVENT_STREAM}, {JSON}", f"{JSON}, {EVENT_STREAM}"):
        resp = await api.post("{ viewer { name } }", Accept=accept)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith(EVENT_STREAM), accept
        assert "event: next" in resp.text and "event: complete" in resp.text


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, JSON),
        ("", JSON),
        ("  ", JSON),
        (JSON, JSON),
        ("APPLICATION/JSON", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};charset=UTF-8", GRAPHQL_RESPONSE),
        (f'{GRAPHQL_RESPONSE}; charset="utf-8"', GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};charset=iso-8859-1", None),  # Parley writes UTF-8 only
        (f"{GRAPHQL_RESPONSE};charset=iso-8859-1, {JSON}", JSON),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.999", JSON),
        (f"{GRAPHQL_RESPONSE};q=0, */*", JSON),
        (f"{JSON};q=0, */*", GRAPHQL_RESPONSE),
        (f"{JSON};q=0, application/*;q=0.1", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.2;level=1, {JSON};q=0.1", GRAPHQL_RESPONSE),  # accept-ext after q
        (f"{GRAPHQL_RESPONSE};q=abc, {JSON};q=0.1", JSON),  # a malformed q drops its range
        (f"{GRAPHQL_RESPONSE};q=2, {JSON};q=0.1", JSON),
        (f"{GRAPHQL_RESPONSE};q=nan", None),
        (EVENT_STREAM, EVENT_STREAM),
        (f"{EVENT_STREAM}, {GRAPHQL_RESPONSE}", EVENT_STREAM),  # equally good: named SSE wins
        (f"{EVENT_STREAM};q=0.5, {JSON}", JSON),
        (f"{EVENT_STREAM};q=0", None),
        ("text/*", None),  # streaming is asked for by name, never by a wildcard
        ("text/html", None),
        ("*/*;q=0", None),
        ("json, /, application/", None),
        ("text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8", JSON),  # a browser
    ],
)
def test_negotiate(accept: str | None, media: str | None) -> None:
    assert negotiate(accept) == media


def test_negotiate_long_headers_uncached() -> None:
    accept = ", ".join(f"application/x-{i};q=0.1" for i in range(100)) + f", {GRAPHQL_RESPONSE}"
    assert negotiate(accept) == GRAPHQL_RESPONSE


@pytest.mark.parametrize(
    ("errors", "status", "headers"),
    [
        ([{"message": "x", "extensions": {"code": "BAD_USER_INPUT"}}], 400, {}),
        ([{"message": "x", "extensions": {"code": "UNAUTHENTICATED"}}], 401, {"WWW-Authenticate": "Bearer"}),
        ([{"message": "x", "extensions": {"code": "FORBIDDEN"}}], 403, {}),
        (
            [{"message": "x", "extensions": {"code": "RATE_LIMITED", "retryAfter": 7}}],
            429,
            {"Retry-After": "7"},
        ),
        ([{"message": "x", "extensions": {"code": "SERVICE_UNAVAILABLE"}}], 503, {}),
        ([{"message": "x", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}], 500, {}),
        ([{"message": "no code"}], 400, {}),
        ([], 400, {}),
    ],
)
def test_request_error_status(errors: list[object], status: int, headers: dict[str, str]) -> None:
    assert request_error_status(errors) == (status, headers)


async def test_get_stays_refused(api: Api) -> None:
    """GET serves GraphiQL only, whatever the media type asked for."""
    for accept in (GRAPHQL_RESPONSE, JSON, "*/*"):
        resp = await api.client.get(
            "/graphql",
            params={"query": "{ viewer { name } }"},
            headers={"Authorization": f"Bearer {api.token}", "Accept": accept},
        )
        assert resp.status_code == 405, (accept, resp.text)
        assert resp.headers["allow"] == "POST"
