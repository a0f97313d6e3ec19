"""Authentication: API tokens, JWTs, and what works without a token."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from starlette.applications import Starlette

from tests.conftest import Api, MakeApi, Variant

SECRET = "test-secret-that-is-long-enough-for-hs256"


def assert_unauthenticated(resp: httpx.Response) -> None:
    assert resp.status_code in (200, 401), resp.text
    body = resp.json()
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert "Traceback" not in resp.text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer pk_not-a-real-token",
        "Bearer not-a-token-at-all",
        "Basic dXNlcjpwYXNz",
        "Token pk_whatever",
    ],
)
async def test_missing_or_bad_token(client: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = await client.post("/graphql", json={"query": "{ viewer { name } }"}, headers=headers)
    assert_unauthenticated(resp)


async def test_unauthenticated_mutation_changes_nothing(client: httpx.AsyncClient, api: Api) -> None:
    resp = await client.post(
        "/graphql",
        json={"query": 'mutation { createAgent(input: {name: "sneaky", model: "echo"}) { name } }'},
    )
    assert_unauthenticated(resp)
    resp = await client.post("/graphql", json={"query": "mutation { createSession(input: {}) { id } } "})
    assert_unauthenticated(resp)
    assert (await api.gql('{ agent(name: "sneaky") { name } }'))["agent"] is None


async def test_every_field_needs_a_token(client: httpx.AsyncClient) -> None:
    for query in [
        "{ agents { name } }",
        '{ agent(name: "assistant") { name } }',
        "{ __typename agents { name } }",
        "{ sessions { totalCount } }",
        # Top-level fragments named like introspection fields are not introspection.
        "query { ...__schema } fragment __schema on Query { agents { name } }",
        "query { ...__typename } fragment __typename on Query { agents { instructions } }",
        "query { ... on Query { agents { name } } }",
    ]:
        resp = await client.post("/graphql", json={"query": query})
        assert_unauthenticated(resp)


async def test_introspection_works_without_a_token(client: httpx.AsyncClient) -> None:
    checks: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        ("{ __typename }", lambda d: d == {"__typename": "Query"}),
        ("{ __schema { queryType { name } } }", lambda d: d["__schema"]["queryType"]["name"] == "Query"),
        ('{ __type(name: "Session") { name } }', lambda d: d["__type"]["name"] == "Session"),
        (
            "query IntrospectionQuery { __schema { types { name } directives { name } } }",
            lambda d: "Session" in {t["name"] for t in d["__schema"]["types"]},
        ),
    ]
    for query, check in checks:
        resp = await client.post("/graphql", json={"query": query})
        body = resp.json()
        assert resp.status_code == 200 and "errors" not in body, body
        assert check(body["data"]), body


async def test_token_identifies_its_user(make_api: MakeApi) -> None:
    alice = await make_api()
    boss = await make_api(admin=True)
    assert (await alice.gql("{ viewer { name isAdmin } }"))["viewer"] == {
        "name": alice.name,
        "isAdmin": False,
    }
    assert (await boss.gql("{ viewer { name isAdmin } }"))["viewer"] == {"name": boss.name, "isAdmin": True}
    # Case of the scheme does not matter.
    resp = await alice.client.post(
        "/graphql", json={"query": "{ viewer { name } }"}, headers={"Authorization": f"bearer {alice.token}"}
    )
    assert resp.json()["data"]["viewer"]["name"] == alice.name


async def test_tokens_are_stored_only_as_hashes(make_api: MakeApi, sql: asyncpg.Connection) -> None:
    api = await make_api()
    rows = await sql.fetch(
        "SELECT t.* FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = $1", api.name
    )
    assert len(rows) == 1
    secret_part = api.token.removeprefix("pk_")
    for row in rows:
        for value in row.values():
            assert secret_part not in str(value)
    everything = await sql.fetchval("SELECT string_agg(t::text, '|') FROM api_tokens t")
    assert secret_part not in everything


@pytest.fixture
async def jwt_client(app: Starlette, variant: Variant) -> httpx.AsyncClient:
    """A second app instance that accepts HS256 JWTs, on the same (already open) database."""
    client: httpx.AsyncClient = await variant(jwt_secret=SECRET)
    return client


def _token(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_jwt_user_is_created_on_first_sight(
    jwt_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    name = f"jwt-{uuid.uuid4().hex[:8]}"
    api = Api(jwt_client, _token({"sub": name, "exp": int(time.time()) + 600}), name)
    first = (await api.gql("{ viewer { id name isAdmin } }"))["viewer"]
    assert (first["name"], first["isAdmin"]) == (name, False)
    # The same subject is the same user, also with another token.
    again = Api(
        jwt_client, _token({"sub": name, "iat": int(time.time()), "exp": int(time.time()) + 60}), name
    )
    assert (await again.gql("{ viewer { id } }"))["viewer"]["id"] == first["id"]
    # The user owns sessions like anyone else.
    made = (await api.gql("mutation { createSession(input: {}) { id } }"))["createSession"]
    got = await again.gql("query($id: UUID!) { session(id: $id) { id } }", {"id": made["id"]})
    assert got["session"]["id"] == made["id"]
    # API tokens keep working on the JWT-enabled app, and the plain app refuses JWTs.
    plain = await client.post(
        "/graphql", json={"query": "{ viewer { name } }"}, headers={"Authorization": f"Bearer {api.token}"}
    )
    assert_unauthenticated(plain)


async def test_bad_jwts_are_refused(jwt_client: httpx.AsyncClient) -> None:
    name = f"jwt-{uuid.uuid4().hex[:8]}"
    bad = [
        _token({"sub": name}, key="another-secret-of-sufficient-length!"),
        _token({"sub": name, "exp": int(time.time()) - 60}),
        _token({"name": name}),
        _token({"sub": ""}),
        jwt.encode({"sub": name}, "", algorithm="none"),  # an unsigned token ("" is no key, as None)
        _token({"sub": name})[:-4] + "AAAA",
    ]
    for token in bad:
        resp = await jwt_client.post(
            "/graphql", json={"query": "{ viewer { name } }"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert_unauthenticated(resp)


def _exp(seconds: int = 600) -> int:
    return int(time.time()) + seconds


async def test_a_jwt_without_exp_is_refused(jwt_client: httpx.AsyncClient) -> None:
    name = f"jwt-{uuid.uuid4().hex[:8]}"
    for claims in ({"sub": name}, {"sub": name, "iat": int(time.time())}):
        resp = await jwt_client.post(
            "/graphql",
            json={"query": "{ viewer { name } }"},
            headers={"Authorization": f"Bearer {_token(claims)}"},
        )
        assert_unauthenticated(resp)


@pytest.fixture
async def strict_jwt_client(app: Starlette, variant: Variant) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await variant(
        jwt_secret=SECRET, jwt_audience="parley-api", jwt_issuer="https://idp.example"
    )
    return client


async def test_audience_and_issuer_are_required_when_set(strict_jwt_client: httpx.AsyncClient) -> None:
    name = f"jwt-{uuid.uuid4().hex[:8]}"
    good = {"sub": name, "exp": _exp(), "aud": "parley-api", "iss": "https://idp.example"}
    api = Api(strict_jwt_client, _token(good), name)
    assert (await api.gql("{ viewer { name } }"))["viewer"]["name"] == name
    for wrong in ({"aud": "another-api"}, {"iss": "https://evil.example"}, {"aud": None}, {"iss": None}):
        claims = {k: v for k, v in {**good, **wrong}.items() if v is not None}
        resp = await strict_jwt_client.post(
            "/graphql",
            json={"query": "{ viewer { name } }"},
            headers={"Authorization": f"Bearer {_token(claims)}"},
        )
        assert_unauthenticated(resp)


async def test_a_jwt_never_becomes_a_token_user(jwt_client: httpx.AsyncClient, admin: Api) -> None:
    """A JWT whose subject is an admin's name is a different, ordinary user."""
    admin_view = (await admin.gql("{ viewer { id name isAdmin } }"))["viewer"]
    assert admin_view["isAdmin"]
    seen = set()
    for sub in (admin.name, f" {admin.name} "):
        impostor = Api(jwt_client, _token({"sub": sub, "exp": _exp()}), sub)
        view = (await impostor.gql("{ viewer { id name isAdmin } }"))["viewer"]
        assert view["id"] != admin_view["id"] and view["isAdmin"] is False
        seen.add(view["id"])
        # ... and cannot do what only admins do.
        denied = await impostor.code('mutation { createAgent(input: {name: "x", model: "echo"}) { id } }')
        assert denied == "FORBIDDEN"
    assert len(seen) == 1  # both spellings name the same JWT user
