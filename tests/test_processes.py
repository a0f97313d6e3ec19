"""Several Parley processes on one database: busy sessions, cancel, crashes, PostgreSQL restarts."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import Api
from tests.servers import Server, parley_server
from tests.wsclient import WATCH, GraphQLWS

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEND = "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id status } } }"
ACTIVE = "query($s: UUID!) { session(id: $s) { activeRun { id } } }"
RUN = "query($r: UUID!) { run(id: $r) { status error { code } reply { content } } }"
CANCEL = "mutation($r: UUID!) { cancelRun(id: $r) { status } }"


@pytest.fixture(scope="module")
def pair(
    database_url: str, app: Starlette, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    tmp = tmp_path_factory.mktemp("processes")
    with parley_server(database_url, tmp, "a") as a, parley_server(database_url, tmp, "b") as b:
        yield a, b


async def post(server: Server, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        resp = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body: dict[str, Any] = resp.json()
    return body


async def ok(server: Server, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = await post(server, token, query, variables)
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def slow_session(api: Api, admin: Api) -> str:
    name = f"slow-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": "script:slow"}},
    )
    data = await api.gql("mutation($n: String) { createSession(input: {agentName: $n}) { id } }", {"n": name})
    sid: str = data["createSession"]["id"]
    return sid


async def active_run(server: Server, token: str, sid: str) -> str:
    for _ in range(600):
        run = (await ok(server, token, ACTIVE, {"s": sid}))["session"]["activeRun"]
        if run:
            run_id: str = run["id"]
            return run_id
        await asyncio.sleep(0.02)  # polling for an observable state, with a deadline
    raise TimeoutError("no active run")


async def final_status(server: Server, token: str, run_id: str) -> dict[str, Any]:
    for _ in range(1000):
        run: dict[str, Any] = (await ok(server, token, RUN, {"r": run_id}))["run"]
        if run["status"] != "RUNNING":
            return run
        await asyncio.sleep(0.02)  # polling for an observable state, with a deadline
    raise TimeoutError("run did not end")


async def test_a_busy_session_is_busy_for_every_process(
    pair: tuple[Server, Server], api: Api, admin: Api
) -> None:
    a, b = pair
    sid = await slow_session(api, admin)
    turn = asyncio.create_task(post(a, api.token, SEND, {"s": sid, "c": "count 3000"}))
    run_id = await active_run(b, api.token, sid)

    second = await post(b, api.token, SEND, {"s": sid, "c": "me too"})
    assert second["errors"][0]["extensions"]["code"] == "RUN_IN_PROGRESS"
    add = 'mutation($s: UUID!) { addMessages(sessionId: $s, messages: [{role: USER, content: "x"}]) { id } }'
    added = await post(b, api.token, add, {"s": sid})
    assert added["errors"][0]["extensions"]["code"] == "RUN_IN_PROGRESS"

    cancelled = await ok(b, api.token, CANCEL, {"r": run_id})  # from the other process
    assert cancelled["cancelRun"]["status"] == "CANCELLED"
    first = await asyncio.wait_for(turn, 30)
    assert first["data"]["sendMessage"]["run"]["status"] == "CANCELLED"
    run = await final_status(a, api.token, run_id)
    # Cancelled before or after its first words: whatever it had said is its reply.
    assert run["reply"] is None or run["reply"]["content"].startswith("w0 ")


async def test_a_killed_process_leaves_its_run_interrupted_and_spares_live_ones(
    pair: tuple[Server, Server], api: Api, admin: Api, database_url: str, tmp_path: Path
) -> None:
    a, _ = pair
    live_sid, doomed_sid = await slow_session(api, admin), await slow_session(api, admin)
    live_turn = asyncio.create_task(post(a, api.token, SEND, {"s": live_sid, "c": "count 3000"}))
    live_run = await active_run(a, api.token, live_sid)

    with parley_server(database_url, tmp_path, "doomed") as doomed:
        doomed_turn = asyncio.create_task(post(doomed, api.token, SEND, {"s": doomed_sid, "c": "count 3000"}))
        doomed_run = await active_run(a, api.token, doomed_sid)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
    with pytest.raises(httpx.HTTPError):
        await doomed_turn

    # A Parley process starting up marks the dead process's run; the live one is untouched.
    with parley_server(database_url, tmp_path, "restart"):
        pass
    dead = (await ok(a, api.token, RUN, {"r": doomed_run}))["run"]
    assert dead["status"] == "FAILED" and dead["error"]["code"] == "INTERRUPTED"
    assert (await ok(a, api.token, RUN, {"r": live_run}))["run"]["status"] == "RUNNING"

    # The crashed session works again at once.
    again = await ok(
        a,
        api.token,
        'mutation($s: UUID!) { addMessages(sessionId: $s, messages: [{role: USER, content: "back"}]) { sequence } }',
        {"s": doomed_sid},
    )
    assert again["addMessages"][0]["sequence"] == 2

    await ok(a, api.token, CANCEL, {"r": live_run})
    await asyncio.wait_for(live_turn, 30)


async def test_watchers_survive_a_postgresql_restart(api: Api, admin: Api, tmp_path: Path) -> None:
    """Own embedded PostgreSQL, so stopping it disturbs no one else."""
    from pgserver.postgres_server import get_server

    from tests.postgres import _with_db

    with tempfile.TemporaryDirectory(prefix="parley-restart-pg-") as pgdata:
        pg = get_server(pgdata, cleanup_mode="stop")
        url = _with_db(pg.get_uri(), "postgres")
        try:
            with parley_server(url, tmp_path, "ra") as a, parley_server(url, tmp_path, "rb") as b:
                token = await _admin_token(a)
                sid = (await ok(a, token, "mutation { createSession(input: {}) { id } }", {}))[
                    "createSession"
                ]["id"]
                async with GraphQLWS(b.ws_url, token) as watcher:
                    op = await watcher.subscribe(WATCH, {"s": sid})
                    await ok(b, token, ACTIVE, {"s": sid})  # the subscription is set up by now

                    pg.cleanup()  # stop PostgreSQL ...
                    pg = get_server(pgdata, cleanup_mode="stop")  # ... and start it again

                    for _ in range(500):  # the pools reconnect; retry until a turn goes through
                        body = await post(a, token, SEND, {"s": sid, "c": "after the restart"})
                        if not body.get("errors"):
                            break
                        assert body["errors"][0]["extensions"]["code"] in (
                            "SERVICE_UNAVAILABLE",
                            "INTERNAL_SERVER_ERROR",
                        )
                        await asyncio.sleep(0.05)  # retrying a request with a deadline
                    seen: list[dict[str, Any]] = []
                    async for data in watcher.events(op):
                        seen.append(data["sessionEvents"])
                        if seen[-1]["__typename"] == "RunFinished":
                            break
            contents = [e["message"]["content"] for e in seen if e["__typename"] == "MessageAdded"]
            assert contents == ["after the restart", "after the restart"]
        finally:
            pg.cleanup()


async def _admin_token(server: Server) -> str:
    # A fresh database prints the admin token once at start.
    for line in server.output().splitlines():
        if line.startswith("pk_"):
            return line.strip()
    raise AssertionError(f"no admin token printed:\n{server.output()}")
