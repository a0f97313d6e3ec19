"""The HTTP surface: health checks, the self-hosted GraphiQL page and the production switches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from tests.conftest import Api, Variant

HTML = {"Accept": "text/html"}


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and "src" in found:
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("href") and not (found["href"] or "").startswith("data:"):
            self.urls.append(found["href"] or "")


async def test_health(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200
    resp = await client.get("/readyz")
    assert resp.status_code == 200


async def test_graphiql_is_self_hosted(client: httpx.AsyncClient) -> None:
    resp = await client.get("/graphql", headers=HTML)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "GraphiQL" in resp.text
    parser = _Assets()
    parser.feed(resp.text)
    assert any(u.endswith(".js") for u in parser.urls) and any(u.endswith(".css") for u in parser.urls)
    for url in parser.urls:
        assert url.startswith("/graphiql-static/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert "unpkg.com" not in resp.text and "jsdelivr" not in resp.text and "cdn" not in resp.text.lower()


async def test_graphiql_can_be_turned_off(variant: Variant) -> None:
    c = await variant(graphiql=False)
    resp = await c.get("/graphql", headers=HTML)
    assert resp.status_code == 404
    assert "GraphiQL" not in resp.text and "<script" not in resp.text
    asset = await c.get("/graphiql-static/graphiql.min.js")
    assert asset.status_code == 404
    # The API itself is still there.
    assert (await c.get("/healthz")).status_code == 200


async def test_introspection_can_be_turned_off(variant: Variant, api: Api) -> None:
    c = await variant(introspection=False)
    off = Api(c, api.token, api.name)
    for query in ["{ __schema { types { name } } }", '{ __type(name: "Session") { name } }']:
        resp = await off.post(query)
        body = resp.json()
        assert resp.status_code < 500
        assert body.get("data") is None, body
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        # without a token too
        resp = await c.post("/graphql", json={"query": query})
        assert resp.json().get("data") is None
    assert (await off.gql("{ viewer { name } }")) == {"viewer": {"name": api.name}}
    # Suggestions would name fields too: none without introspection, the default app keeps them.
    typo = "{ viewr { name } sesions { totalCount } }"
    hidden = (await off.post(typo)).json()["errors"]
    assert hidden and all("Did you mean" not in e["message"] and "viewer" not in e["message"] for e in hidden)
    shown = (await api.post(typo)).json()["errors"]
    assert any("Did you mean 'viewer'" in e["message"] for e in shown)
    # The default app keeps it on.
    assert "__schema" in await api.gql("{ __schema { queryType { name } } }")


@pytest.fixture
async def cors_client(variant: Variant) -> AsyncIterator[httpx.AsyncClient]:
    yield await variant(allowed_origins="https://app.example")


async def test_cors_allows_only_listed_origins(cors_client: httpx.AsyncClient, api: Api) -> None:
    ok = await cors_client.options(
        "/graphql",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    bad = await cors_client.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert bad.headers.get("access-control-allow-origin") != "https://evil.example"
