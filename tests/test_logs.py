"""Logs (API.md section 10): a real `parley serve` with PARLEY_LOG_FORMAT=json, every line parsed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.servers import parley_server
from tests.wsclient import CHAT, GraphQLWS

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def post(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}", **headers},
    )


async def test_json_lines_with_ids_and_no_secrets(database_url: str, api: Api, tmp_path: Path) -> None:
    http_secret = f"Zorblax-{uuid.uuid4().hex[:8]} sleeps on the mat"
    ws_secret = f"Quux-{uuid.uuid4().hex[:8]} over the socket"
    token = str(api.token)
    with parley_server(
        database_url, tmp_path, "json", PARLEY_LOG_FORMAT="json", PARLEY_LOG_LEVEL="info"
    ) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            viewer = await post(client, token, "{ viewer { id } }", {})
            user_id = viewer.json()["data"]["viewer"]["id"]
            assert len(viewer.headers["x-request-id"]) >= 16  # one made up for a request without one

            created = await post(
                client,
                token,
                "mutation { createSession(input: {}) { id } }",
                {},
                **{"X-Request-ID": "req-42.a"},
            )
            assert created.headers["x-request-id"] == "req-42.a"  # a client's own id is kept
            session = created.json()["data"]["createSession"]["id"]

            sent = await post(
                client,
                token,
                "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id status } reply { content } } }",
                {"s": session, "c": http_secret},
                **{"X-Request-ID": "req-send"},
            )
            result = sent.json()["data"]["sendMessage"]
            assert result["run"]["status"] == "COMPLETED" and http_secret in result["reply"]["content"]
            run_id = result["run"]["id"]

            refused = await post(client, "pk_wrong", "{ viewer { id } }", {})
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        async with GraphQLWS(server.ws_url, token) as ws:
            op = await ws.subscribe(CHAT, {"s": session, "c": ws_secret})
            kinds = [event["chat"]["__typename"] async for event in ws.events(op)]
            assert kinds[-1] == "RunFinished"

    text = server.output()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)

    # Secrets and contents never appear, not even in part.
    assert token not in text and token[3:] not in text
    for secret in (http_secret, ws_secret):
        assert secret not in text and secret.split()[0] not in text

    access = [x for x in lines if x["logger"] == "parley.access" and x.get("request_id") == "req-send"]
    assert len(access) == 1 and access[0]["status"] == 200 and access[0]["path"] == "/graphql"
    assert access[0]["duration_ms"] > 0 and access[0]["user"] == user_id

    (operation,) = [x for x in lines if x.get("request_id") == "req-send" and x["logger"] == "parley.graphql"]
    assert operation["operation"] == "mutation sendMessage" and operation["outcome"] == "ok"
    assert operation["session_id"] == session and operation["run_id"] == run_id
    assert operation["user"] == user_id and operation["duration_ms"] > 0

    (ended,) = [x for x in lines if x.get("run_id") == run_id and x["message"].startswith("run ended")]
    assert ended["request_id"] == "req-send" and ended["session_id"] == session and ended["user"] == user_id
    assert ended["status"] == "completed" and ended["model"] == "echo" and ended["duration_ms"] > 0
    assert ended["output_tokens"] > 0

    # The WebSocket's run: its lines carry the connection's request id and the subscription.
    ws_runs = [x for x in lines if x["message"].startswith("run ended") and x["run_id"] != run_id]
    assert len(ws_runs) == 1 and ws_runs[0]["operation"] == "subscription chat"
    assert ws_runs[0]["session_id"] == session and ws_runs[0]["request_id"]

    failed = [x for x in lines if x["logger"] == "parley.graphql" and x.get("outcome") == "error"]
    assert failed and "user" not in failed[0]  # the bad token named nobody
