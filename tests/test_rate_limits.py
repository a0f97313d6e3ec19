"""PARLEY_RATE_LIMIT (API.md sections 1-2): a token bucket per user in PostgreSQL, shared by processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.servers import parley_server
from tests.test_runs import new_session
from tests.wsclient import WATCH, GraphQLWS, SubscriptionError

pytestmark = pytest.mark.asyncio(loop_scope="session")

VIEWER = "{ viewer { id } }"


async def exhaust(api: Api, most: int = 500) -> dict[str, Any]:
    """Operations until one is refused; that error."""
    for _ in range(most):
        body = (await api.post(VIEWER)).json()
        if body.get("errors"):
            return dict(body["errors"][0])
    raise AssertionError(f"{most} operations and none refused")


async def test_past_the_limit_operations_are_refused_with_retry_after(configured: Any) -> None:
    user, admin = await configured(rate_limit=5)
    for _ in range(5):  # a full bucket: the minute's operations at once
        await user.gql(VIEWER)
    resp = await user.post(VIEWER)
    body = resp.json()
    assert resp.status_code == 200 and body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert isinstance(error["extensions"]["retryAfter"], int) and 1 <= error["extensions"]["retryAfter"] <= 12

    # The GraphQL-over-HTTP media type answers it as HTTP 429 with Retry-After.
    strict = await user.post(VIEWER, Accept="application/graphql-response+json")
    assert strict.status_code == 429 and 1 <= int(strict.headers["retry-after"]) <= 12
    assert "data" not in strict.json()

    # Mutations count and are refused alike; other users keep their own budget.
    assert await user.code("mutation { createSession(input: {}) { id } }") == "RATE_LIMITED"
    await admin.gql(VIEWER)
    # Introspection alone names nobody: never limited.
    anonymous = Api(user.client, "")  # no Authorization header
    assert (await anonymous.post("{ __schema { queryType { name } } }")).status_code == 200


async def test_the_bucket_refills(configured: Any) -> None:
    user, _ = await configured(rate_limit=60)  # one operation a second
    error = await exhaust(user)
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert retry_after == 1
    await asyncio.sleep(retry_after)  # what the client is told to do: the window is what is tested
    await user.gql(VIEWER)


async def test_processes_share_one_bucket(configured: Any) -> None:
    a, _ = await configured(rate_limit=4)
    b_any, _ = await configured(rate_limit=4)
    on_b = Api(b_any.client, a.token, a.name, b_any.runtime)
    for api in (a, on_b, a, on_b):
        await api.gql(VIEWER)
    assert await a.code(VIEWER) == "RATE_LIMITED"
    assert await on_b.code(VIEWER) == "RATE_LIMITED"


async def test_subscribe_messages_count(database_url: str, api: Api, tmp_path: Path) -> None:
    session = await new_session(api)  # on the in-process app: no limit there
    with parley_server(database_url, tmp_path, "rated", PARLEY_RATE_LIMIT="3") as server:
        async with GraphQLWS(server.ws_url, str(api.token)) as ws:  # connection_init is no operation
            for _ in range(2):
                await ws.subscribe(WATCH, {"s": session, "a": None})
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                resp = await client.post(
                    "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {api.token}"}
                )
                assert "errors" not in resp.json()  # the third of the minute
            refused = await ws.subscribe(WATCH, {"s": session, "a": None})
            with pytest.raises(SubscriptionError) as error:
                async for _ in ws.events(refused):
                    pass
            assert error.value.code == "RATE_LIMITED"
            assert error.value.errors[0]["extensions"]["retryAfter"] >= 1
