"""Limits and malformed requests: always a clear 4xx / BAD_USER_INPUT, never a crash or a leak."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import Api, Variant
from tests.helpers import ADD_MESSAGES, add_messages, create_session, get_session, user

LEAKS = ("Traceback", 'File "', "SELECT ", "INSERT ", "UPDATE ", "asyncpg", "tortoise")
BIG = "x" * 70_000  # over PARLEY_MAX_STATE_BYTES (65536) once serialized


def no_leak(resp: httpx.Response) -> None:
    assert resp.status_code < 500, resp.text
    for word in LEAKS:
        assert word not in resp.text, (word, resp.text[:500])


async def codes(api: Api, query: str, variables: dict[str, Any] | None = None) -> list[str]:
    resp = await api.post(query, variables)
    no_leak(resp)
    body = resp.json()
    assert body.get("errors"), body
    return [e["extensions"]["code"] for e in body["errors"]]


async def test_invalid_uuid(api: Api) -> None:
    assert await api.code("query($id: UUID!) { session(id: $id) { id } }", {"id": "nope"}) == "BAD_USER_INPUT"
    assert await api.code('{ session(id: "nope") { id } }') == "BAD_USER_INPUT"
    assert await api.code('{ session(id: "12345678-1234-1234-1234") { id } }') == "BAD_USER_INPUT"
    assert await api.code("query($id: UUID!) { messages(sessionId: $id) { totalCount } }", {"id": 42}) == (
        "BAD_USER_INPUT"
    )
    assert await api.code('mutation { deleteSession(id: "x") }') == "BAD_USER_INPUT"
    assert await api.code(
        'mutation { saveMemory(key: "k", value: 1, scope: SESSION, sessionId: "x") { key } }'
    ) == ("BAD_USER_INPUT")


async def test_content_limits(api: Api) -> None:
    s = await create_session(api)
    for content in ["", "   ", "x" * 32_001, "nul \x00 inside"]:
        assert await api.code(ADD_MESSAGES, {"sid": s["id"], "messages": [user(content)]}) == "BAD_USER_INPUT"
        assert (
            await api.code(
                "mutation($sid: UUID!, $c: String!) { sendMessage(sessionId: $sid, content: $c) { run { id } } }",
                {"sid": s["id"], "c": content},
            )
            == "BAD_USER_INPUT"
        )
    assert (await get_session(api, s["id"]))["messageCount"] == 0


async def test_long_identifiers(api: Api) -> None:
    s = await create_session(api)
    long = "y" * 201
    bad_messages = [
        [{"role": "ASSISTANT", "content": "", "toolCalls": [{"id": long, "name": "f"}]}],
        [{"role": "ASSISTANT", "content": "", "toolCalls": [{"id": "c", "name": long}]}],
        [
            {"role": "ASSISTANT", "content": "", "toolCalls": [{"id": "c", "name": "f"}]},
            {"role": "TOOL", "content": "r", "toolCallId": "c", "toolName": long},
        ],
    ]
    for messages in bad_messages:
        assert await api.code(ADD_MESSAGES, {"sid": s["id"], "messages": messages}) == "BAD_USER_INPUT"
    assert await api.code(
        "mutation($e: String!) { createSession(input: {externalId: $e}) { id } }", {"e": long}
    ) == ("BAD_USER_INPUT")
    assert await api.code(
        "mutation($t: String!) { createSession(input: {title: $t}) { id } }", {"t": long}
    ) == ("BAD_USER_INPUT")
    assert (
        await api.code("mutation($e: String!) { getOrCreateSession(externalId: $e) { id } }", {"e": long})
        == "BAD_USER_INPUT"
    )


async def test_nul_characters_anywhere_are_bad_input(api: Api) -> None:
    s = await create_session(api)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("mutation($v: String!) { createSession(input: {title: $v}) { id } }", {"v": "a\x00b"}),
        ("mutation($v: JSON!) { createSession(input: {state: $v}) { id } }", {"v": {"k": "a\x00b"}}),
        ('mutation($v: JSON!) { saveMemory(key: "k", value: $v) { key } }', {"v": "a\x00"}),
        ("mutation($v: String!) { saveMemory(key: $v, value: 1) { key } }", {"v": "k\x00"}),
        ("query($v: String!) { session(externalId: $v) { id } }", {"v": "e\x00"}),
        ("query($v: String!) { agent(name: $v) { id } }", {"v": "a\x00"}),
        ("query($v: String!) { sessions(filter: {titleContains: $v}) { totalCount } }", {"v": "\x00"}),
        (
            "mutation($sid: UUID!, $v: JSON!) { updateSessionState(id: $sid, set: $v) { id } }",
            {"sid": s["id"], "v": {"a\x00": 1}},
        ),
    ]
    for query, variables in cases:
        assert await codes(api, query, variables) == ["BAD_USER_INPUT"], query
    assert (await get_session(api, s["id"]))["stateVersion"] == 0


async def test_huge_json_values(api: Api) -> None:
    s = await create_session(api)
    sid = s["id"]
    cases = [
        ("mutation($v: JSON) { createSession(input: {state: $v}) { id } }", {"v": {"big": BIG}}),
        ("mutation($v: JSON) { createSession(input: {metadata: $v}) { id } }", {"v": {"big": BIG}}),
        (
            "mutation($id: UUID!, $v: JSON) { updateSession(id: $id, input: {metadata: $v}) { id } }",
            {"id": sid, "v": {"b": BIG}},
        ),
        (
            "mutation($id: UUID!, $v: JSON) { updateSessionState(id: $id, set: $v) { id } }",
            {"id": sid, "v": {"b": BIG}},
        ),
        ('mutation($v: JSON!) { saveMemory(key: "k", value: $v) { key } }', {"v": BIG}),
        (
            'mutation($id: UUID!, $v: JSON!) { saveMemory(key: "k", value: $v, scope: SESSION, sessionId: $id) { key } }',
            {"id": sid, "v": [BIG]},
        ),
        (ADD_MESSAGES, {"sid": sid, "messages": [{"role": "USER", "content": "x", "metadata": {"b": BIG}}]}),
        (
            ADD_MESSAGES,
            {
                "sid": sid,
                "messages": [
                    {"role": "ASSISTANT", "toolCalls": [{"id": "c", "name": "f", "arguments": {"b": BIG}}]}
                ],
            },
        ),
    ]
    for query, variables in cases:
        assert await api.code(query, variables) == "BAD_USER_INPUT", query

    # Each half fits; merged they do not: the state stays as it was.
    half = "h" * 40_000
    update = "mutation($id: UUID!, $v: JSON) { updateSessionState(id: $id, set: $v) { stateVersion } }"
    await api.gql(update, {"id": sid, "v": {"a": half}})
    assert await api.code(update, {"id": sid, "v": {"b": half}}) == "BAD_USER_INPUT"
    after = await get_session(api, sid)
    assert after["stateVersion"] == 1 and set(after["state"]) == {"a"}
    assert after["metadata"] == {} and after["messageCount"] == 0


async def test_page_size_over_100(api: Api) -> None:
    s = await create_session(api)
    await add_messages(api, s["id"], user("hi"))
    for query, variables in [
        ("{ sessions(first: 101) { totalCount } }", {}),
        ("query($id: UUID!) { messages(sessionId: $id, first: 101) { totalCount } }", {"id": s["id"]}),
        ("query($id: UUID!) { messages(sessionId: $id, last: 1000) { totalCount } }", {"id": s["id"]}),
        ("query($id: UUID!) { session(id: $id) { messages(last: 101) { totalCount } } }", {"id": s["id"]}),
        ("{ sessions { edges { node { messages(first: 101) { totalCount } } } } }", {}),
    ]:
        assert "BAD_USER_INPUT" in await codes(api, query, variables), query
    data = await api.gql(
        "query($id: UUID!) { messages(sessionId: $id, first: 100) { totalCount } }", {"id": s["id"]}
    )
    assert data["messages"]["totalCount"] == 1


async def test_query_depth_bomb(api: Api, client: httpx.AsyncClient) -> None:
    deep = "{ viewer " + "{ viewer " * 30 + "{ name }" + " }" * 30 + " }"
    assert set(await codes(api, deep)) == {"BAD_USER_INPUT"}
    resp = await api.post(deep)
    assert any("depth" in e["message"] for e in resp.json()["errors"]), resp.text
    # A parser-level nesting bomb (far past the depth limit) is a clean request error too.
    nested = "{" + "viewer {" * 600 + "name" + "}" * 601
    assert await codes(api, nested) == ["BAD_USER_INPUT"]
    nested_list = "{ agent(name: " + "[" * 900 + '"x"' + "]" * 900 + ") { name } }"
    assert await codes(api, nested_list) == ["BAD_USER_INPUT"]
    # Without a token the limits answer the same way (nothing runs).
    resp = await client.post("/graphql", json={"query": nested})
    no_leak(resp)
    assert [e["extensions"]["code"] for e in resp.json()["errors"]] == ["BAD_USER_INPUT"]


async def test_depth_limit_applies_to_valid_queries(api: Api, variant: Variant) -> None:
    c = await variant(max_query_depth=3)
    limited = type(api)(c, api.token, api.name)
    assert await limited.gql("{ sessions { totalCount edges { cursor } } }")
    query = "{ sessions { edges { node { agent { name } } } } }"
    assert await codes(limited, query) == ["BAD_USER_INPUT"]
    # Fragments do not hide depth.
    fragmented = "{ sessions { ...C } } fragment C on SessionConnection { edges { node { agent { name } } } }"
    assert await codes(limited, fragmented) == ["BAD_USER_INPUT"]
    assert await api.gql(query)


async def test_alias_bomb(api: Api) -> None:
    query = "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(50)) + " }"
    assert await codes(api, query) == ["BAD_USER_INPUT"]
    fine = "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(10)) + " }"
    assert len(await api.gql(fine)) == 10


async def test_token_bomb(api: Api) -> None:
    query = "{ viewer { " + "name " * 3000 + "} }"
    assert await codes(api, query) == ["BAD_USER_INPUT"]
    # a huge string literal is one token, but still bounded by the content limit
    s = await create_session(api)
    huge = "x" * 40_000
    assert await codes(
        api,
        'mutation { addMessages(sessionId: "'
        + s["id"]
        + '", messages: [{role: USER, content: "'
        + huge
        + '"}]) { id } }',
    ) == ["BAD_USER_INPUT"]


async def test_syntax_errors_have_a_code(api: Api) -> None:
    for query in [
        "{ viewer { name }",
        "query {",
        "}{",
        "mutation { createSession(input: {) { id } }",
        "{ viewer { nope } }",
    ]:
        assert await codes(api, query) == ["BAD_USER_INPUT"], query


MALFORMED: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{bad json", "application/json"),
    ("empty body", b"", "application/json"),
    ("invalid UTF-8", b"\xff\xfe\x00", "application/json"),
    ("JSON null", b"null", "application/json"),
    ("JSON number", b"42", "application/json"),
    ("JSON string", b'"{ viewer { name } }"', "application/json"),
    ("JSON list (batching is off)", b'[{"query": "{ viewer { name } }"}]', "application/json"),
    ("list of junk", b"[1, 2]", "application/json"),
    ("no query", b"{}", "application/json"),
    ("query not a string", b'{"query": 5}', "application/json"),
    ("variables not an object", b'{"query": "{ viewer { name } }", "variables": [1]}', "application/json"),
    ("NaN in variables", b'{"query": "{ viewer { name } }", "variables": {"a": NaN}}', "application/json"),
    (
        "nested too deeply",
        b'{"query": "{ viewer { name } }", "variables": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
        "application/json",
    ),
    ("unbalanced deep nesting", b"[" * 100_000, "application/json"),
    (
        "unknown operation",
        b'{"query": "query A { viewer { name } }", "operationName": "B"}',
        "application/json",
    ),
    ("text/plain", b'{"query": "{ viewer { name } }"}', "text/plain"),
    ("form", b"query=%7B+viewer+%7B+name+%7D+%7D", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize(("what", "body", "content_type"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_body_is_4xx(api: Api, what: str, body: bytes, content_type: str) -> None:
    resp = await api.client.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": content_type},
    )
    assert resp.status_code == 400, (what, resp.status_code, resp.text[:300])
    no_leak(resp)


async def test_operations_via_get_are_off(api: Api) -> None:
    """GET serves GraphiQL only: no query, mutation or subscription runs from a URL."""
    for query, accept in [
        ("{ viewer { name } }", "application/json"),
        ('mutation { createSession(input: {title: "via GET"}) { id } }', "application/json"),
        (
            'subscription { sessionEvents(sessionId: "00000000-0000-0000-0000-000000000000") { __typename } }',
            "text/event-stream",
        ),
    ]:
        resp = await api.client.get(
            "/graphql",
            params={"query": query},
            headers={"Authorization": f"Bearer {api.token}", "Accept": accept},
        )
        assert resp.status_code == 405, resp.text
        assert resp.headers["allow"] == "POST"
        no_leak(resp)
        assert api.name not in resp.text
    listed = await api.gql("{ sessions { totalCount } }")
    assert listed["sessions"]["totalCount"] == 0
    resp = await api.client.put("/graphql", json={"query": "{ viewer { name } }"})
    assert resp.status_code == 405


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


async def test_json_nested_deeper_than_32_is_bad_input_everywhere(api: Api) -> None:
    s = await create_session(api)
    sid = s["id"]
    deep, fine = _nested(33), _nested(31)
    places = [
        ("mutation($v: JSON) { createSession(input: {state: $v}) { id } }", {}),
        ("mutation($v: JSON) { createSession(input: {metadata: $v}) { id } }", {}),
        (
            "mutation($id: UUID!, $v: JSON) { updateSession(id: $id, input: {metadata: $v}) { id } }",
            {"id": sid},
        ),
        ("mutation($id: UUID!, $v: JSON) { updateSessionState(id: $id, set: $v) { id } }", {"id": sid}),
        ('mutation($v: JSON!) { saveMemory(key: "deep", value: $v) { key } }', {}),
        (
            'mutation($id: UUID!, $v: JSON) { sendMessage(sessionId: $id, content: "hi", metadata: $v) { run { id } } }',
            {"id": sid},
        ),
    ]
    for query, variables in places:
        assert await codes(api, query, {**variables, "v": deep}) == ["BAD_USER_INPUT"], query
    for messages in (
        [{"role": "USER", "content": "x", "metadata": deep}],
        [{"role": "ASSISTANT", "toolCalls": [{"id": "c", "name": "f", "arguments": deep}]}],
    ):
        assert await codes(api, ADD_MESSAGES, {"sid": sid, "messages": messages}) == ["BAD_USER_INPUT"]
    # A very deep document never reaches the services: refused as a bad request, not a crash.
    resp = await api.client.post(
        "/graphql",
        content=b'{"query": "{ viewer { name } }", "variables": {"v": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    no_leak(resp)
    # Just within the limit is fine, and nothing above was stored.
    await api.gql("mutation($v: JSON) { createSession(input: {state: $v}) { id } }", {"v": fine})
    after = await get_session(api, sid)
    assert after["stateVersion"] == 0 and after["messageCount"] == 0 and after["metadata"] == {}


async def test_driver_texts_never_reach_clients(api: Api) -> None:
    """Text PostgreSQL cannot store (lone surrogates, NUL) is refused in Parley's own words."""
    s = await create_session(api)
    lone = "bad \ud800 text"
    cases = [
        ("mutation($v: String!) { createSession(input: {title: $v}) { id } }", {"v": lone}),
        ("mutation($v: String!) { createSession(input: {externalId: $v}) { id } }", {"v": lone}),
        ("mutation($v: JSON!) { createSession(input: {state: $v}) { id } }", {"v": {"k": lone}}),
        ("mutation($v: JSON!) { createSession(input: {state: $v}) { id } }", {"v": {lone: 1}}),
        ('mutation($v: JSON!) { saveMemory(key: "k", value: $v) { key } }', {"v": [lone]}),
        ("mutation($v: String!) { saveMemory(key: $v, value: 1) { key } }", {"v": lone}),
        ("query($v: String!) { session(externalId: $v) { id } }", {"v": lone}),
        ("query($v: String!) { searchMessages(query: $v) { rank } }", {"v": lone}),
        (
            "mutation($id: UUID!, $v: String!) { sendMessage(sessionId: $id, content: $v) { run { id } } }",
            {"id": s["id"], "v": lone},
        ),
        (ADD_MESSAGES, {"sid": s["id"], "messages": [{"role": "USER", "content": lone}]}),
    ]
    for query, variables in cases:
        # JSON escapes carry the lone surrogate ("\\ud800"), as a client's JSON encoder would send it.
        resp = await api.client.post(
            "/graphql",
            content=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"},
        )
        no_leak(resp)
        for word in (
            "codec",
            "surrogate not allowed",
            "invalid byte sequence",
            "query argument",
            "$1",
            "UTF8",
        ):
            assert word not in resp.text, (word, resp.text)
        assert [e["extensions"]["code"] for e in resp.json()["errors"]] == ["BAD_USER_INPUT"], (
            query,
            resp.text,
        )
    assert (await get_session(api, s["id"]))["messageCount"] == 0
