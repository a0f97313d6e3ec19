"""GET /metrics (API.md section 10): read back over HTTP after real runs, one process and two workers."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api, subscription
from tests.servers import parley_server
from tests.test_runs import new_session, send
from tests.wsclient import WATCH

pytestmark = pytest.mark.asyncio(loop_scope="session")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> tuple[Samples, str]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text), resp.text


async def test_runs_tokens_operations_and_latencies_are_counted(client: httpx.AsyncClient, api: Api) -> None:
    before, _ = await scrape(client)
    session = await new_session(api)
    secret_text = f"metrics-content-{uuid.uuid4().hex}"
    for _ in range(2):
        result = await send(api, session, f"hello {secret_text}")
        assert result["run"]["status"] == "COMPLETED"
    assert (
        await api.code(
            'mutation($s: UUID!) { sendMessage(sessionId: $s, content: "x") { run { id } } }',
            {"s": str(uuid.uuid4())},
        )
        == "NOT_FOUND"
    )
    after, text = await scrape(client)

    def grew(metric: str, /, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert grew("parley_runs_total", status="completed", model="echo") == 2
    assert grew("parley_tokens_total", model="echo", type="input") > 0
    assert grew("parley_tokens_total", model="echo", type="output") > 0
    assert grew("parley_run_duration_seconds_count", model="echo") == 2
    assert grew("parley_run_duration_seconds_bucket", model="echo", le="300.0") == 2
    assert grew("parley_time_to_first_token_seconds_count", model="echo") == 2
    assert grew("parley_time_to_first_token_seconds_bucket", model="echo", le="0.005") >= 0  # ms buckets
    ok = {"type": "mutation", "name": "sendMessage"}
    assert grew("parley_graphql_operations_total", **ok, outcome="ok") == 2
    assert grew("parley_graphql_operations_total", **ok, outcome="error") == 1
    assert grew("parley_graphql_operation_duration_seconds_count", **ok) == 3
    assert grew("parley_graphql_operations_total", type="mutation", name="createSession", outcome="ok") == 1
    assert value(after, "parley_active_runs") == 0
    assert ("parley_db_pool_in_use", frozenset()) in after
    assert ("parley_active_subscriptions", frozenset()) in after
    # Labels hold no user, token or content.
    assert api.name not in text and str(api.token) not in text and secret_text not in text


async def test_subscriptions_and_delivered_events(
    client: httpx.AsyncClient, api: Api, schema: Any, runtime: Any
) -> None:
    session = await new_session(api)
    await send(api, session, "first")
    before, _ = await scrape(client)
    async with subscription(schema, runtime, str(api.token), WATCH, {"s": session, "a": 0}) as events:
        kinds = [(await anext(events))["__typename"]]  # the replay has begun: the stream is open
        during, _ = await scrape(client)
        assert (
            value(during, "parley_active_subscriptions") == value(before, "parley_active_subscriptions") + 1
        )
        await send(api, session, "hi there")
        async for event in events:
            kinds.append(event["__typename"])
            if event["__typename"] == "RunFinished":
                break
    after, _ = await scrape(client)
    assert value(after, "parley_active_subscriptions") == value(before, "parley_active_subscriptions")
    delivered = value(after, "parley_events_delivered_total") - value(before, "parley_events_delivered_total")
    assert delivered >= len(kinds) >= 3
    subs = {"type": "subscription", "name": "sessionEvents"}
    assert value(after, "parley_graphql_operations_total", **subs, outcome="ok") >= 1


async def test_metrics_can_be_turned_off(variant: Any) -> None:
    client = await variant(metrics=False)
    assert (await client.get("/metrics")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200


async def test_two_workers_are_added_up(database_url: str, api: Api, tmp_path: Path) -> None:
    """With --workers 2 every scrape (whichever worker answers) counts the runs of both."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    with parley_server(database_url, tmp_path, "metrics2", workers=2, TMPDIR=str(temp)) as server:
        (metrics_dir,) = temp.glob("parley-metrics-*")  # set up by `parley serve` for its workers

        async def turn(session: str) -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:  # a new connection each
                resp = await c.post(
                    "/graphql",
                    json={
                        "query": 'mutation($s: UUID!) { sendMessage(sessionId: $s, content: "hi") { run { status } } }',
                        "variables": {"s": session},
                    },
                    headers={"Authorization": f"Bearer {api.token}"},
                )
                assert resp.json()["data"]["sendMessage"]["run"]["status"] == "COMPLETED"

        sessions = [await new_session(api), await new_session(api)]
        before = await scrape_server(server.url)
        turns = 0
        deadline = time.monotonic() + 60
        # The kernel hands connections to either worker: turn until both have run some.
        while len(workers_with_runs(metrics_dir)) < 2:
            assert time.monotonic() < deadline, "every connection went to one worker"
            await asyncio.gather(*(turn(session) for session in sessions))
            turns += 2
        for _ in range(4):  # whichever worker answers, the figure is the sum
            after = await scrape_server(server.url)
            assert (
                value(after, "parley_runs_total", status="completed", model="echo")
                - value(before, "parley_runs_total", status="completed", model="echo")
                == turns
            )
            assert value(after, "parley_active_runs") == 0
    assert not metrics_dir.exists()  # removed when the server stops


async def scrape_server(url: str) -> Samples:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        return (await scrape(c))[0]


def workers_with_runs(metrics_dir: Path) -> set[str]:
    found = set()
    merge: Any = MultiProcessCollector.merge  # prometheus-client's merge has no annotations
    for path in metrics_dir.glob("counter_*.db"):
        try:
            families = merge([str(path)])
        except struct.error:  # read while its worker grows the file: counted at the next look
            continue
        for family in families:
            if family.name == "parley_runs" and any(s.value for s in family.samples):
                found.add(path.name)
    return found
