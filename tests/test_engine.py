"""The run engine's edge paths, in-process: services, the schema's own subscribe, two runtimes.

A second runtime (``other_runtime``) stands for another Parley process: its own owner key,
liveness lock, listener and fan-out on the same database. Each test here covers a defect of
issue 9 and failed before the engine was rebuilt.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import strawberry
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from tests.conftest import Api, subscription
from tests.scripted import StreamFn, last_user_text, register
from tests.wsclient import EVENT_FIELDS, SubscriptionError

if TYPE_CHECKING:
    from models import User
    from services.runs import Started
    from services.runtime import Runtime
    from services.settings import Settings


SEND = """mutation($s: UUID!, $c: String!, $k: String) {
  sendMessage(sessionId: $s, content: $c, idempotencyKey: $k) {
    run { id status error { code } } reply { content } messages { role content }
  }
}"""
WATCH = (
    "subscription($s: UUID!, $a: Int) { sessionEvents(sessionId: $s, afterSequence: $a) {"
    + EVENT_FIELDS
    + "} }"
)
CHAT = "subscription($s: UUID!, $c: String!) { chat(sessionId: $s, content: $c) {" + EVENT_FIELDS + "} }"


async def agent_with(admin: Api, stream: StreamFn, **options: Any) -> str:
    name = f"e-{uuid.uuid4().hex[:8]}"
    assert admin.runtime is not None
    model = register(admin.runtime.models, stream)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False, **options}},
    )
    return name


async def session_of(api: Api, agent: str | None = None) -> str:
    data = await api.gql(
        "mutation($n: String) { createSession(input: {agentName: $n}) { id } }", {"n": agent}
    )
    return str(data["createSession"]["id"])


async def send(api: Api, session: str, content: str, key: str | None = None) -> dict[str, Any]:
    data = await api.gql(SEND, {"s": session, "c": content, "k": key})
    return dict(data["sendMessage"])


def users_seen(messages: list[ModelMessage]) -> int:
    return sum(
        isinstance(p, UserPromptPart) for m in messages if isinstance(m, ModelRequest) for p in m.parts
    )


async def until(predicate: Callable[[], Awaitable[bool]], deadline_s: float = 10.0) -> None:
    """Poll an observable condition (each check is a query or a look at state), with a deadline."""
    async with asyncio.timeout(deadline_s):
        while not await predicate():  # noqa: ASYNC110 - the condition lives in the database
            await asyncio.sleep(0.01)


# --- replies are never dropped ---------------------------------------------------------------


async def test_replies_follow_two_user_messages_in_a_row(api: Api, admin: Api) -> None:
    """Two failed turns leave two USER rows in a row; pydantic-ai merges them: the reply stays."""
    failing = {"now": True}

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        if failing["now"]:
            raise ModelHTTPError(500, "m", body="down")
        yield f"seen {users_seen(messages)}"

    session = await session_of(api, await agent_with(admin, stream))
    for _ in range(2):
        assert (await send(api, session, "fail"))["run"]["status"] == "FAILED"
    failing["now"] = False
    for turn in range(2):
        result = await send(api, session, f"hello {turn}")
        assert result["run"]["status"] == "COMPLETED"
        assert result["reply"] is not None and result["reply"]["content"].startswith("seen ")
        assert [m["role"] for m in result["messages"]] == ["USER", "ASSISTANT"]
    # The same after turns recorded elsewhere: USER, USER.
    other = await session_of(api, await agent_with(admin, stream))
    await api.gql(
        'mutation($s: UUID!) { addMessages(sessionId: $s, messages: [{role: USER, content: "a"}, {role: USER, content: "b"}]) { id } }',
        {"s": other},
    )
    result = await send(api, other, "c")
    assert result["reply"]["content"] == "seen 3"


# --- turns belong to the runtime, not to the request ------------------------------------------


async def test_a_caller_cancelled_at_any_moment_leaves_no_run_behind(api: Api, admin: Api) -> None:
    from services import runs

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "done"

    session = uuid.UUID(await session_of(api, await agent_with(admin, stream)))
    user = await _user(api)
    rt = admin.runtime
    assert rt is not None
    for ticks in range(12):  # cancel the caller after 0, 1, 2, ... event-loop rounds
        caller = asyncio.ensure_future(runs.start_turn(rt, user, session, runs.Ask(f"t{ticks}")))
        for _ in range(ticks):
            await asyncio.sleep(0)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        # Whatever the moment, the turn ends (or never began): no RUNNING run without a process.
        await until(lambda: _settled(rt))
        assert await _idle(api, str(session))
    result = await send(api, str(session), "still usable")
    assert result["run"]["status"] == "COMPLETED"


async def _settled(rt: Runtime) -> bool:
    return not rt.busy


async def _user(api: Api) -> User:
    from models import User

    return await User.get(name=api.name)


async def _idle(api: Api, session: str) -> bool:
    data = await api.gql("query($s: UUID!) { session(id: $s) { activeRun { id } } }", {"s": session})
    return data["session"]["activeRun"] is None


# --- liveness --------------------------------------------------------------------------------


async def test_losing_the_liveness_lock_stops_the_runs_and_refuses_turns(
    api: Api, admin: Api, other_runtime: Runtime, sql: asyncpg.Connection
) -> None:
    gate = asyncio.Event()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "first words "
        await gate.wait()
        yield "never said"

    from services import runs

    session = uuid.UUID(await session_of(api, await agent_with(admin, stream)))
    user = await _user(api)
    started = await runs.start_turn(other_runtime, user, session, runs.Ask("go"))
    await until(lambda: _said(started, "first words"))
    # The other process loses its connection (and with it, its liveness lock).
    await sql.execute("SELECT pg_terminate_backend($1)", other_runtime.listener.backend_pid)
    assert started.handle is not None
    await asyncio.wait_for(started.handle.done.wait(), 10)
    gate.set()
    run = await sql.fetchrow("SELECT status, error_code FROM runs WHERE id = $1", started.run.id)
    assert run is not None
    assert (run["status"], run["error_code"]) == ("failed", "INTERRUPTED")
    # It wrote nothing after: its partial reply at most, and the session takes new turns (here).
    texts = await sql.fetch(
        "SELECT content FROM messages WHERE session_id = $1 AND role = 'assistant'", session
    )
    assert all("never said" not in r["content"] for r in texts)
    assert (await send(api, str(session), "again"))["run"]["status"] == "COMPLETED"
    # The other process takes turns again once it is back.
    await until(lambda: _connected(other_runtime))
    again = await runs.start_turn(other_runtime, user, session, runs.Ask("back"))
    assert again.handle is not None
    await asyncio.wait_for(again.handle.done.wait(), 10)


async def _said(started: Started, text: str) -> bool:
    """Whether the run (in this process) has said ``text`` so far."""
    return started.handle is not None and text in started.handle.text


async def _connected(rt: Runtime) -> bool:
    return bool(rt.listener.connected)


async def test_a_dead_owners_run_ends_for_the_watchers_of_every_process(
    api: Api, admin: Api, other_runtime: Runtime, schema: strawberry.Schema, sql: asyncpg.Connection
) -> None:
    """A run whose owner key nobody holds is ended by the reaper within seconds, and watchers
    (here: of this runtime) get RunFinished without anyone touching the session."""
    session = await session_of(api, await agent_with(admin, _never_called))
    assert api.token is not None and api.runtime is not None
    async with subscription(schema, api.runtime, api.token, WATCH, {"s": session, "a": 0}) as events:
        await _live(api, session, events)
        run_id = uuid.uuid4()
        await sql.execute(
            """INSERT INTO runs (id, session_id, status, model, owner_key, started_at, partial_text, partial_index)
               VALUES ($1, $2, 'running', 'x', $3, now(), 'half a', 1)""",
            run_id,
            uuid.UUID(session),
            12345,  # no process holds this key: its owner died
        )
        async with asyncio.timeout(10):
            async for event in events:
                if event["__typename"] == "RunFinished":
                    assert event["run"]["id"] == str(run_id)
                    assert (
                        event["run"]["status"] == "FAILED" and event["run"]["error"]["code"] == "INTERRUPTED"
                    )
                    break
    assert await _idle(api, session)


async def _never_called(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    yield "ok"


async def _mark(api: Api, session: str) -> int:
    data = await api.gql(
        'mutation($s: UUID!) { addMessages(sessionId: $s, messages: [{role: USER, content: "mark"}]) { sequence } }',
        {"s": session},
    )
    return int(data["addMessages"][0]["sequence"])


async def _live(api: Api, session: str, events: AsyncIterator[dict[str, Any]]) -> None:
    """Mark the session and read until the mark arrives: from then on the watcher is live.

    Subscriptions here replay from ``afterSequence: 0``, so the mark is seen whether it was
    stored before the watcher registered or after.
    """
    mark = await _mark(api, session)
    async with asyncio.timeout(10):
        async for event in events:
            if event["__typename"] == "MessageAdded" and event["message"]["sequence"] == mark:
                return


# --- the fan-out -----------------------------------------------------------------------------


async def test_a_failed_flush_keeps_text_ranges_aligned(
    api: Api,
    admin: Api,
    other_runtime: Runtime,
    schema: strawberry.Schema,
    sql: asyncpg.Connection,
    database_url: str,
) -> None:
    """A flush that fails is given back whole: large text sent later still points at the right
    characters, and a watcher on another process gets every character exactly once."""
    first, rest = asyncio.Event(), asyncio.Event()
    chunks = [f"<{i}>" + "z" * 2500 for i in range(4)]  # each too large to travel inline

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        await first.wait()
        yield chunks[0]
        await rest.wait()
        for chunk in chunks[1:]:
            yield chunk

    from services import runs

    session = uuid.UUID(await session_of(api, await agent_with(admin, stream)))
    user = await _user(api)
    assert api.token is not None
    async with subscription(schema, other_runtime, api.token, WATCH, {"s": str(session), "a": 0}) as events:
        await _live(api, str(session), events)
        assert admin.runtime is not None
        started = await runs.start_turn(admin.runtime, user, session, runs.Ask("go"))
        # Hold the run's row: the process's next flush blocks on it; then that flush fails.
        blocker = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", started.run.id)
                first.set()  # the run speaks only now: its first flush must wait for the row
                await until(lambda: _flush_waiting(sql))
                await sql.execute(
                    """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                       WHERE query LIKE '%partial_text = r.partial_text%' AND wait_event_type = 'Lock'"""
                )
                # Meanwhile the flusher retries one flush at a time: never one per tick.
                assert await _flushes_waiting(sql) <= 1
        finally:
            await blocker.close()
        rest.set()
        text = ""
        async with asyncio.timeout(20):
            async for event in events:
                if event["__typename"] == "TextSnapshot":
                    text = event["text"]
                elif event["__typename"] == "TextDelta" and event["runId"] == str(started.run.id):
                    text += event["delta"]
                elif event["__typename"] == "RunFinished":
                    break
    assert text == "".join(chunks)


async def _flushes_waiting(sql: asyncpg.Connection) -> int:
    return int(
        await sql.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE query LIKE '%partial_text = r.partial_text%' AND wait_event_type = 'Lock'
                 AND datname = current_database()"""
        )
    )


async def _flush_waiting(sql: asyncpg.Connection) -> bool:
    return await _flushes_waiting(sql) >= 1


async def test_an_unreadable_text_range_resyncs_instead_of_an_empty_delta(
    api: Api, admin: Api, other_runtime: Runtime, schema: strawberry.Schema
) -> None:
    """A notification whose text range can no longer be read (its run row gone) never becomes
    an empty TextDelta: the watcher catches up from the database instead."""
    session = await session_of(api)
    assert api.token is not None
    async with subscription(schema, other_runtime, api.token, WATCH, {"s": session, "a": 0}) as events:
        await _live(api, session, events)
        notice = {
            "owner": 1,
            "blocks": [
                {
                    "session": session,
                    "run": str(uuid.uuid4()),
                    "events": [{"kind": "text_range", "index": 3, "start": 0, "end": 5000}],
                }
            ],
        }
        other_runtime.fanout.on_notify(json.dumps(notice))
        mark = await _mark(api, session)
        async with asyncio.timeout(10):
            async for event in events:
                assert event["__typename"] != "TextDelta"
                if event["__typename"] == "MessageAdded" and event["message"]["sequence"] == mark:
                    break


async def test_a_flooded_inbox_resyncs_its_watchers(
    api: Api, other_runtime: Runtime, schema: strawberry.Schema
) -> None:
    from services import fanout

    session = await session_of(api)
    assert api.token is not None
    async with subscription(schema, other_runtime, api.token, WATCH, {"s": session, "a": 0}) as events:
        await _live(api, session, events)
        noise = json.dumps({"owner": 1, "blocks": []})
        for _ in range(fanout.INBOX_LIMIT + 50):  # faster than any drain: no await in between
            other_runtime.fanout.on_notify(noise)
        assert len(other_runtime.fanout._inbox) <= fanout.INBOX_LIMIT
        # The watcher catches up from the database: what comes next is not missed.
        await _live(api, session, events)


# --- sessions and subscriptions --------------------------------------------------------------


async def test_deleting_a_session_while_turns_start_never_fails_internally(api: Api, admin: Api) -> None:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "hi"

    agent = await agent_with(admin, stream)
    for _ in range(8):
        session = await session_of(api, agent)
        turns = [api.post(SEND, {"s": session, "c": f"t{i}", "k": None}) for i in range(3)]
        deletion = api.post("mutation($s: UUID!) { deleteSession(id: $s) }", {"s": session})
        for resp in await asyncio.gather(*turns, deletion):
            body = resp.json()
            codes = {e["extensions"]["code"] for e in body.get("errors", [])}
            assert codes <= {"NOT_FOUND", "RUN_IN_PROGRESS"}, body
        assert (await api.gql("query($s: UUID!) { session(id: $s) { id } }", {"s": session}))[
            "session"
        ] is None


async def test_closing_a_subscription_releases_its_watcher_at_once(
    api: Api, schema: strawberry.Schema
) -> None:
    session = await session_of(api)
    rt = api.runtime
    assert api.token is not None and rt is not None
    async with subscription(schema, rt, api.token, WATCH, {"s": session, "a": 0}) as events:
        await _live(api, session, events)
        assert rt.hub.watched(uuid.UUID(session))
    # No collector has run: the watcher went with the subscription.
    assert not rt.hub.watched(uuid.UUID(session))


async def test_a_watcher_joining_mid_run_in_the_same_process_misses_nothing(
    api: Api, admin: Api, schema: strawberry.Schema
) -> None:
    gate = asyncio.Event()

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for i in range(30):
            if i == 10:
                await gate.wait()
            yield f"w{i} "

    session = await session_of(api, await agent_with(admin, stream))
    assert api.token is not None and api.runtime is not None
    turn = asyncio.ensure_future(send(api, session, "go"))
    await until(lambda: _running(api, session))
    async with subscription(schema, api.runtime, api.token, WATCH, {"s": session, "a": 0}) as events:
        gate.set()
        text, indexes = "", []
        async for event in events:
            if event["__typename"] == "TextSnapshot":
                text, indexes = event["text"], [event["index"]]
            elif event["__typename"] == "TextDelta":
                text += event["delta"]
                indexes.append(event["index"])
            elif event["__typename"] == "RunFinished":
                break
    assert text == "".join(f"w{i} " for i in range(30))
    assert indexes == sorted(set(indexes)) and indexes[-1] == 30
    await turn


async def _running(api: Api, session: str) -> bool:
    return not await _idle(api, session)


async def test_a_dropped_subscriber_resumes_with_after_sequence(
    api: Api, admin: Api, schema: strawberry.Schema
) -> None:
    """A subscriber too slow for the stream is dropped with SUBSCRIBER_TOO_SLOW, and
    resubscribing with afterSequence gives it everything it missed."""
    from services import hub

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "x" * (hub.QUEUE_BYTES + 10)  # more than a subscriber may have queued

    session = await session_of(api, await agent_with(admin, stream))
    assert api.token is not None and api.runtime is not None
    async with subscription(schema, api.runtime, api.token, WATCH, {"s": session, "a": 0}) as events:
        await _live(api, session, events)  # from now on this subscriber reads nothing
        result = await send(api, session, "flood")
        with pytest.raises(SubscriptionError) as dropped:
            async for _ in events:
                pass
        assert dropped.value.code == "SUBSCRIBER_TOO_SLOW"
    async with subscription(schema, api.runtime, api.token, WATCH, {"s": session, "a": 1}) as events:
        roles = []
        async for event in events:
            roles.append(event["message"]["role"])
            if len(roles) == 2:
                break
    assert roles == ["USER", "ASSISTANT"] and result["run"]["status"] == "COMPLETED"


# --- bounded caches, concurrent edits --------------------------------------------------------


def test_the_validated_history_cache_is_bounded_by_size() -> None:
    from models import Role
    from services.conversation import HistoryCache, StoredRow, dump

    cache = HistoryCache(max_chars=50_000)
    for i in range(40):
        big = ModelRequest(parts=[UserPromptPart(content=f"{i} " + "x" * 10_000)])
        row = StoredRow(i + 1, Role.USER, None, json.dumps(dump(big), separators=(",", ":")))
        assert last_user_text(cache.to_history([row])).startswith(f"{i} ")
        assert cache.chars <= 50_000 + 11_000  # at most the bound, plus the window in use
    assert len(cache) <= 5


async def test_concurrent_agent_updates_keep_both_changes(admin: Api) -> None:
    name = await agent_with(admin, _never_called)
    update = "mutation($n: String!, $i: AgentUpdateInput!) { updateAgent(name: $n, input: $i) { name } }"
    for round_ in range(15):
        await asyncio.gather(
            admin.gql(update, {"n": name, "i": {"instructions": f"be brief {round_}"}}),
            admin.gql(update, {"n": name, "i": {"historyLimit": 10 + round_}}),
        )
        agent = (
            await admin.gql(
                "query($n: String!) { agent(name: $n) { instructions historyLimit } }", {"n": name}
            )
        )["agent"]
        assert agent == {"instructions": f"be brief {round_}", "historyLimit": 10 + round_}


async def test_a_stopped_runtime_leaves_no_task_and_no_running_reply(
    api: Api, admin: Api, settings: Settings, sql: asyncpg.Connection
) -> None:
    """Everything a runtime started ends with it: run tasks, flusher, drain, reaper, listener."""
    from services import runs
    from services.runtime import Runtime

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "started "
        await asyncio.Event().wait()  # never finishes by itself
        yield "never"

    session = uuid.UUID(await session_of(api, await agent_with(admin, stream)))
    user = await _user(api)
    before = set(asyncio.all_tasks())  # the test app's own runtime runs beside this one
    assert settings.database_url is not None and admin.runtime is not None
    async with Runtime(
        settings.model_copy(update={"retention_days": 3000}), settings.database_url
    ).running() as rt:
        rt.models = admin.runtime.models
        started = await runs.start_turn(rt, user, session, runs.Ask("go"))
        await until(lambda: _said(started, "started"))
        owned = {t for t in asyncio.all_tasks() - before if t.get_name().startswith("parley-")}
        assert {t.get_name() for t in owned} >= {
            "parley-turn",
            "parley-flusher",
            "parley-reaper",
            "parley-retention",
        }
    assert all(t.done() for t in owned)
    run = await sql.fetchrow("SELECT status, error_code, reply_id FROM runs WHERE id = $1", started.run.id)
    assert run is not None
    assert (run["status"], run["error_code"]) == ("failed", "INTERRUPTED") and run["reply_id"] is not None
