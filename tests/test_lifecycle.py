"""How runs end when their process stops, dies or hangs: real server processes and signals."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api
from tests.servers import Server, parley_server
from tests.test_processes import ACTIVE, SEND, active_run, ok, post, slow_session
from tests.wsclient import WATCH, GraphQLWS

pytestmark = pytest.mark.asyncio(loop_scope="session")

STATUS = "query($r: UUID!) { run(id: $r) { status error { code } reply { content } } }"


async def test_a_clean_stop_ends_its_replies_interrupted_within_10_s(
    api: Api, admin: Api, database_url: str, tmp_path: Path
) -> None:
    sid = await slow_session(api, admin)
    assert api.token is not None
    with parley_server(database_url, tmp_path, "stopping") as server:
        turn = asyncio.ensure_future(post(server, api.token, SEND, {"s": sid, "c": "count 3000"}))
        run_id = await active_run(server, api.token, sid)
        await _until_text(server, api.token, sid)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.process.wait, 15)
        took = time.monotonic() - stopped_at
        answered = await turn  # the request waiting for the reply got its answer
    assert took < 10, f"the stop took {took:.1f}s"
    assert answered["data"]["sendMessage"]["run"]["status"] == "FAILED"
    run = (await api.gql(STATUS, {"r": run_id}))["run"]
    assert run["status"] == "FAILED" and run["error"]["code"] == "INTERRUPTED"
    assert run["reply"] is not None and run["reply"]["content"].startswith("w0 ")  # the partial text


async def _until_text(server: Server, token: str, sid: str) -> None:
    """Until the run has said something, as a watcher on its own process sees it."""
    async with GraphQLWS(server.ws_url, token) as watcher:
        async for data in watcher.events(await watcher.subscribe(WATCH, {"s": sid})):
            if data["sessionEvents"]["__typename"] in ("TextSnapshot", "TextDelta"):
                return


async def test_a_killed_owner_ends_its_run_for_watchers_on_other_processes_in_seconds(
    api: Api, admin: Api, database_url: str, tmp_path: Path
) -> None:
    sid = await slow_session(api, admin)
    assert api.token is not None
    with parley_server(database_url, tmp_path, "watching") as watching:
        with parley_server(database_url, tmp_path, "doomed") as doomed:
            turn = asyncio.ensure_future(post(doomed, api.token, SEND, {"s": sid, "c": "count 3000"}))
            run_id = await active_run(doomed, api.token, sid)
            async with GraphQLWS(watching.ws_url, api.token) as watcher:
                op = await watcher.subscribe(WATCH, {"s": sid})
                killed_at = 0.0
                async for data in watcher.events(op):
                    event = data["sessionEvents"]
                    if event["__typename"] in ("TextSnapshot", "TextDelta") and not killed_at:
                        doomed.process.send_signal(signal.SIGKILL)
                        await asyncio.to_thread(doomed.process.wait, 10)
                        killed_at = time.monotonic()
                    if event["__typename"] == "RunFinished":
                        assert event["run"]["id"] == run_id
                        assert event["run"]["status"] == "FAILED"
                        assert event["run"]["error"]["code"] == "INTERRUPTED"
                        break
                assert killed_at and time.monotonic() - killed_at < 5
            with pytest.raises(httpx.HTTPError):  # its own client lost the connection
                await turn
        # Nobody used the session meanwhile: it is idle anyway.
        assert (await ok(watching, api.token, ACTIVE, {"s": sid}))["session"]["activeRun"] is None


async def test_idempotent_retries_do_not_deadlock_a_small_pool(
    api: Api, admin: Api, database_url: str, tmp_path: Path
) -> None:
    """A retry looked the first run up on a second pooled connection inside its transaction:
    with every connection held that way, no retry could ever go on."""
    sid = (await api.gql("mutation { createSession(input: {}) { id } }"))["createSession"]["id"]
    keyed = 'mutation($s: UUID!, $k: String) { sendMessage(sessionId: $s, content: "hi", idempotencyKey: $k) { run { id status } } }'
    assert api.token is not None
    with parley_server(database_url, tmp_path, "small-pool", PARLEY_DB_POOL_SIZE="2") as server:
        first = await ok(server, api.token, keyed, {"s": sid, "k": "once"})
        async with asyncio.timeout(30):
            retries = await asyncio.gather(
                *(post(server, api.token, keyed, {"s": sid, "k": "once"}) for _ in range(8))
            )
    assert {r["data"]["sendMessage"]["run"]["id"] for r in retries} == {first["sendMessage"]["run"]["id"]}


async def test_cancelling_the_run_of_a_stuck_process_ends_it_anyway(
    api: Api, admin: Api, database_url: str, tmp_path: Path
) -> None:
    """Its owner is alive (it holds its liveness lock) but answers nothing: after a few seconds
    of cancel signals the run is ended where the cancel was asked, and the stuck process, when
    it wakes up, writes nothing more into the session."""
    sid = await slow_session(api, admin)
    assert api.token is not None
    with (
        parley_server(database_url, tmp_path, "asker") as asker,
        parley_server(database_url, tmp_path, "stuck") as stuck,
    ):
        turn = asyncio.ensure_future(post(stuck, api.token, SEND, {"s": sid, "c": "count 3000"}))
        run_id = await active_run(stuck, api.token, sid)
        await _until_text(stuck, api.token, sid)
        stuck.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            cancelled = await ok(
                asker, api.token, "mutation($r: UUID!) { cancelRun(id: $r) { status } }", {"r": run_id}
            )
            assert cancelled["cancelRun"]["status"] == "CANCELLED"
            assert time.monotonic() - started < 12
            count = await _message_count(asker, api.token, sid)
        finally:
            stuck.process.send_signal(signal.SIGCONT)
        # Awake again, it finds its run ended: nothing more is written, the session takes turns.
        follow = await ok(
            asker,
            api.token,
            'mutation($s: UUID!) { sendMessage(sessionId: $s, content: "5") { run { status } } }',
            {"s": sid},
        )
        assert follow["sendMessage"]["run"]["status"] == "COMPLETED"
        assert await _message_count(asker, api.token, sid) == count + 2
        await asyncio.wait_for(turn, 30)  # its own client got an answer once it woke up


async def _message_count(server: Server, token: str, sid: str) -> int:
    data = await ok(server, token, "query($s: UUID!) { session(id: $s) { messageCount } }", {"s": sid})
    return int(data["session"]["messageCount"])
