"""Agent runs through sendMessage, with scripted pydantic-ai models (FunctionModel)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo

from services.database import acquire
from tests.conftest import Api
from tests.scripted import Recorder, StreamFn, call, last_user_text, register, tool_returns

SEND = """mutation($s: UUID!, $c: String!, $k: String) {
  sendMessage(sessionId: $s, content: $c, idempotencyKey: $k) {
    run { id status model usage { requests inputTokens outputTokens } error { code message }
          userMessage { id } reply { id content } }
    userMessage { id sequence role content }
    reply { id sequence role content runId model usage { totalTokens } processingTimeMs }
    messages { sequence role content toolCalls { id name arguments } toolCallId toolName }
  }
}"""
HISTORY = "query($s: UUID!) { session(id: $s) { history messageCount activeRun { id } } }"


async def make_agent(
    admin: Api, stream_fn: StreamFn, recorder: Recorder | None = None, **options: Any
) -> str:
    assert admin.runtime is not None
    model = register(admin.runtime.models, stream_fn, recorder)
    name = f"a-{uuid.uuid4().hex[:8]}"
    fields = {"name": name, "model": model, **options}
    await admin.gql("mutation($i: AgentInput!) { createAgent(input: $i) { name } }", {"i": fields})
    return name


async def new_session(api: Api, agent: str | None = None) -> str:
    data = await api.gql(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }", {"i": {"agentName": agent}}
    )
    sid: str = data["createSession"]["id"]
    return sid


async def send(api: Api, session: str, content: str, key: str | None = None) -> dict[str, Any]:
    sent: dict[str, Any] = (await api.gql(SEND, {"s": session, "c": content, "k": key}))["sendMessage"]
    return sent


def dump(messages: list[ModelMessage]) -> Any:
    return ModelMessagesTypeAdapter.dump_python(messages, mode="json")


async def echo_upper(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
    words = last_user_text(messages).upper().split(" ")
    for i, word in enumerate(words):
        yield word if i == 0 else " " + word


async def test_text_turn_persists_reply_usage_and_run(api: Api, admin: Api) -> None:
    agent = await make_agent(admin, echo_upper)
    session = await new_session(api, agent)
    result = await send(api, session, "hello brave new world")
    run = result["run"]
    assert run["status"] == "COMPLETED" and run["error"] is None
    assert run["usage"]["requests"] == 1 and run["usage"]["outputTokens"] > 0
    assert result["userMessage"]["sequence"] == 1 and result["userMessage"]["role"] == "USER"
    reply = result["reply"]
    assert reply["content"] == "HELLO BRAVE NEW WORLD"
    assert reply["sequence"] == 2 and reply["runId"] == run["id"] and reply["model"]
    assert reply["usage"]["totalTokens"] > 0 and reply["processingTimeMs"] >= 0
    assert run["userMessage"]["id"] == result["userMessage"]["id"] and run["reply"]["id"] == reply["id"]
    assert [m["role"] for m in result["messages"]] == ["USER", "ASSISTANT"]
    fetched = await api.gql("query($r: UUID!) { run(id: $r) { status reply { content } } }", {"r": run["id"]})
    assert fetched["run"] == {"status": "COMPLETED", "reply": {"content": "HELLO BRAVE NEW WORLD"}}


def tool_then_text(text: str) -> StreamFn:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if not tool_returns(messages):
            yield call(
                "save_memory",
                '{"key": "mood", "value": "sunny", "scope": "session"}',
                f"c-{uuid.uuid4().hex[:6]}",
            )
        else:
            yield text
            yield " done"

    return stream


async def test_history_is_json_identical_to_what_the_agent_produced(api: Api, admin: Api) -> None:
    recorder = Recorder()
    agent = await make_agent(admin, tool_then_text("noted"), recorder)
    session = await new_session(api, agent)

    first = await send(api, session, "remember my mood")
    assert [m["role"] for m in first["messages"]] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    call_msg, tool_msg = first["messages"][1], first["messages"][2]
    assert call_msg["content"] == "" and call_msg["toolCalls"][0]["name"] == "save_memory"
    assert call_msg["toolCalls"][0]["arguments"] == {"key": "mood", "value": "sunny", "scope": "session"}
    assert tool_msg["toolCallId"] == call_msg["toolCalls"][0]["id"] and tool_msg["toolName"] == "save_memory"
    history_1 = (await api.gql(HISTORY, {"s": session}))["session"]["history"]
    # The model's last request of turn 1 was everything before its final answer.
    assert dump(recorder.requests[-1]) == history_1[:-1]
    assert isinstance(ModelMessagesTypeAdapter.validate_python(history_1)[-1], ModelResponse)

    await send(api, session, "and again")
    history_2 = (await api.gql(HISTORY, {"s": session}))["session"]["history"]
    # What turn 1 produced is exactly what turn 2 sent back to the model, then turn 2 appended.
    assert dump(recorder.requests[-2])[: len(history_1)] == history_1
    assert history_2[: len(history_1)] == history_1
    assert dump(recorder.requests[-1]) == history_2[:-1]
    assert len(history_2) == 8


async def test_added_messages_reach_the_model(api: Api, admin: Api) -> None:
    recorder = Recorder()
    agent = await make_agent(admin, echo_upper, recorder, memoryEnabled=False)
    session = await new_session(api, agent)
    await api.gql(
        """mutation($s: UUID!, $m: [MessageInput!]!) { addMessages(sessionId: $s, messages: $m) { sequence } }""",
        {
            "s": session,
            "m": [
                {"role": "USER", "content": "what's the weather?"},
                {
                    "role": "ASSISTANT",
                    "toolCalls": [{"id": "w1", "name": "weather", "arguments": {"city": "Oslo"}}],
                },
                {"role": "TOOL", "toolCallId": "w1", "content": "rain"},
                {"role": "ASSISTANT", "content": "It rains in Oslo."},
            ],
        },
    )
    await send(api, session, "thanks")
    seen = recorder.requests[-1]
    calls = [p for m in seen if isinstance(m, ModelResponse) for p in m.parts if isinstance(p, ToolCallPart)]
    returns = [
        p for m in seen if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)
    ]
    assert [(c.tool_name, c.tool_call_id, c.args_as_dict()) for c in calls] == [
        ("weather", "w1", {"city": "Oslo"})
    ]
    assert [(r.tool_name, r.tool_call_id, r.content) for r in returns] == [("weather", "w1", "rain")]
    assert last_user_text(seen) == "thanks"


async def test_window_keeps_limit_and_never_splits_a_tool_call_from_its_return(api: Api, admin: Api) -> None:
    recorder = Recorder()
    agent = await make_agent(admin, tool_then_text("ok"), recorder, historyLimit=5)
    session = await new_session(api, agent)
    for i in range(4):
        await send(api, session, f"turn {i}")
    sent = recorder.requests[-2]  # first request of the last turn: the window + the new prompt
    history = sent[:-1]
    assert 0 < len(history) <= 5
    assert recorder.instructions[-2]  # the model always gets instructions (here: the memory block)
    call_ids: set[str] = set()
    for message in history:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                call_ids.add(part.tool_call_id)
            if isinstance(part, ToolReturnPart):
                assert part.tool_call_id in call_ids, "a tool return was sent without its call"
    assert isinstance(history[0], ModelRequest) and not any(
        isinstance(p, ToolReturnPart) for p in history[0].parts
    )


def memory_script(scope: str) -> StreamFn:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        text = last_user_text(messages)
        if text.startswith("remember") and not tool_returns(messages):
            yield call("save_memory", f'{{"key": "color", "value": "teal", "scope": "{scope}"}}', "m1")
        elif text.startswith("forget") and not tool_returns(messages):
            yield call("delete_memory", f'{{"key": "color", "scope": "{scope}"}}', "m2")
        else:
            yield "ok"

    return stream


async def test_user_memory_reaches_the_model_in_another_session(api: Api, admin: Api) -> None:
    recorder = Recorder()
    agent = await make_agent(admin, memory_script("user"), recorder)
    first = await new_session(api, agent)
    await send(api, first, "remember my color")
    memory = await api.gql("{ memory(scope: USER) { key value scope } }")
    assert memory["memory"] == [{"key": "color", "value": "teal", "scope": "USER"}]

    second = await new_session(api, agent)
    await send(api, second, "what is my color?")
    instructions = recorder.instructions[-1]
    assert instructions is not None and "color" in instructions and "teal" in instructions

    await send(api, second, "forget my color")
    assert (await api.gql("{ memory(scope: USER) { key } }"))["memory"] == []


async def test_session_memory_stays_in_its_session(api: Api, admin: Api) -> None:
    recorder = Recorder()
    agent = await make_agent(admin, memory_script("session"), recorder)
    first = await new_session(api, agent)
    await send(api, first, "remember my color")
    await send(api, first, "what is it?")
    instructions = recorder.instructions[-1]
    assert instructions is not None and "teal" in instructions
    data = await api.gql(
        "query($s: UUID!) { session(id: $s) { memory { key value scope sessionId } } }", {"s": first}
    )
    assert data["session"]["memory"] == [
        {"key": "color", "value": "teal", "scope": "SESSION", "sessionId": first}
    ]

    second = await new_session(api, agent)
    await send(api, second, "what is my color?")
    instructions = recorder.instructions[-1]
    assert instructions is not None and "teal" not in instructions


async def test_provider_error_fails_the_run_and_the_next_turn_works(api: Api, admin: Api) -> None:
    state = {"fail": True}

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if state["fail"]:
            yield "partial "
            raise ModelHTTPError(500, "m", body={"error": "upstream key sk-secret-123 broke"})
        yield "fine"

    agent = await make_agent(admin, stream)
    session = await new_session(api, agent)
    resp = await api.post(SEND, {"s": session, "c": "hi", "k": None})
    assert "sk-secret" not in resp.text and "Traceback" not in resp.text
    result = resp.json()["data"]["sendMessage"]
    assert result["run"]["status"] == "FAILED"
    assert result["run"]["error"] == {
        "code": "PROVIDER_ERROR",
        "message": "the model provider answered HTTP 500",
    }
    assert result["reply"] is None and [m["role"] for m in result["messages"]] == ["USER"]
    assert (await api.gql(HISTORY, {"s": session}))["session"]["messageCount"] == 1

    state["fail"] = False
    again = await send(api, session, "hi again")
    assert again["run"]["status"] == "COMPLETED" and again["reply"]["content"] == "fine"
    assert again["userMessage"]["sequence"] == 2


async def test_unexpected_model_crash_is_masked(api: Api, admin: Api) -> None:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        raise RuntimeError("password=hunter2 at /srv/secret.py line 3")
        yield ""

    agent = await make_agent(admin, stream)
    session = await new_session(api, agent)
    resp = await api.post(SEND, {"s": session, "c": "hi", "k": None})
    assert "hunter2" not in resp.text and "secret.py" not in resp.text
    run = resp.json()["data"]["sendMessage"]["run"]
    assert run["status"] == "FAILED" and run["error"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_idempotency_key_returns_the_first_run(api: Api, admin: Api) -> None:
    agent = await make_agent(admin, echo_upper)
    session = await new_session(api, agent)
    first = await send(api, session, "once only", key="k-1")
    second = await send(api, session, "once only", key="k-1")
    assert second["run"]["id"] == first["run"]["id"]
    assert second["reply"]["id"] == first["reply"]["id"]
    assert (await api.gql(HISTORY, {"s": session}))["session"]["messageCount"] == 2
    other_key = await send(api, session, "twice", key="k-2")
    assert other_key["run"]["id"] != first["run"]["id"]


class Gate:
    """A model that streams `before`, then waits for the test to open the gate."""

    def __init__(self, before: str = "partial ") -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.before = before

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        yield self.before
        self.entered.set()
        await self.release.wait()
        yield "end"


async def test_busy_session_refuses_a_second_turn_and_shows_the_active_run(api: Api, admin: Api) -> None:
    gate = Gate()
    agent = await make_agent(admin, gate.stream)
    session = await new_session(api, agent)
    first = asyncio.create_task(send(api, session, "slow one"))
    await asyncio.wait_for(gate.entered.wait(), 10)

    assert await api.code(SEND, {"s": session, "c": "second", "k": None}) == "RUN_IN_PROGRESS"
    add = 'mutation($s: UUID!) { addMessages(sessionId: $s, messages: [{role: USER, content: "x"}]) { id } }'
    assert await api.code(add, {"s": session}) == "RUN_IN_PROGRESS"
    active = (await api.gql(HISTORY, {"s": session}))["session"]["activeRun"]
    assert active is not None

    gate.release.set()
    result = await asyncio.wait_for(first, 10)
    assert result["run"]["id"] == active["id"] and result["reply"]["content"] == "partial end"
    assert (await api.gql(HISTORY, {"s": session}))["session"]["activeRun"] is None


async def test_concurrent_attempts_keep_sequences_gap_free(api: Api, admin: Api) -> None:
    agent = await make_agent(admin, echo_upper)
    session = await new_session(api, agent)
    responses = await asyncio.gather(
        *(api.post(SEND, {"s": session, "c": f"m{i}", "k": None}) for i in range(20))
    )
    outcomes = []
    for resp in responses:
        body = resp.json()
        outcomes.append("ok" if not body.get("errors") else body["errors"][0]["extensions"]["code"])
    assert set(outcomes) <= {"ok", "RUN_IN_PROGRESS"} and "ok" in outcomes
    page = await api.gql(
        "query($s: UUID!) { messages(sessionId: $s, first: 100) { totalCount edges { node { sequence } } } }",
        {"s": session},
    )
    sequences = [e["node"]["sequence"] for e in page["messages"]["edges"]]
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == 2 * outcomes.count("ok")


async def test_cancel_keeps_the_partial_text_as_the_reply(api: Api, admin: Api) -> None:
    gate = Gate("half a thought")
    agent = await make_agent(admin, gate.stream)
    session = await new_session(api, agent)
    turn = asyncio.create_task(send(api, session, "think slowly"))
    await asyncio.wait_for(gate.entered.wait(), 10)
    run_id = (await api.gql(HISTORY, {"s": session}))["session"]["activeRun"]["id"]

    cancelled = await api.gql(
        "mutation($r: UUID!) { cancelRun(id: $r) { status reply { content role } finishedAt } }",
        {"r": run_id},
    )
    assert cancelled["cancelRun"]["status"] == "CANCELLED"
    assert cancelled["cancelRun"]["reply"] == {"content": "half a thought", "role": "ASSISTANT"}
    assert cancelled["cancelRun"]["finishedAt"] is not None
    result = await asyncio.wait_for(turn, 10)
    assert result["run"]["status"] == "CANCELLED" and result["reply"]["content"] == "half a thought"
    # The session is free again and the cancelled reply is part of the history.
    gate.release.set()
    nxt = await send(api, session, "go on")
    assert nxt["run"]["status"] == "COMPLETED"


async def test_a_run_left_by_a_dead_process_is_interrupted_when_the_session_is_next_used(
    api: Api, admin: Api
) -> None:
    agent = await make_agent(admin, echo_upper)
    session = await new_session(api, agent)
    dead_run = uuid.uuid4()
    async with acquire() as conn:
        await conn.execute(
            """INSERT INTO runs (id, session_id, status, model, owner_key, started_at, partial_text, partial_index)
               VALUES ($1, $2, 'running', 'x', $3, now(), '', 0)""",
            dead_run,
            uuid.UUID(session),
            secrets.randbits(62),  # nobody holds this lock: its owner is gone
        )
    result = await send(api, session, "still there?")
    assert result["run"]["status"] == "COMPLETED"
    old = await api.gql("query($r: UUID!) { run(id: $r) { status error { code } } }", {"r": str(dead_run)})
    assert old["run"] == {"status": "FAILED", "error": {"code": "INTERRUPTED"}}


@pytest.mark.parametrize("content", ["", "   "])
async def test_empty_content_is_rejected(api: Api, content: str) -> None:
    session = await new_session(api)
    assert await api.code(SEND, {"s": session, "c": content, "k": None}) == "BAD_USER_INPUT"


async def test_default_agent_echoes(api: Api) -> None:
    session = await new_session(api)
    result = await send(api, session, "ping pong")
    assert result["reply"]["content"] == "ping pong" and result["run"]["model"] == "echo"


async def test_an_unanswered_tool_call_recorded_elsewhere_does_not_block_the_session(
    api: Api, admin: Api
) -> None:
    recorder = Recorder()
    agent = await make_agent(admin, echo_upper, recorder, memoryEnabled=False)
    session = await new_session(api, agent)
    await api.gql(
        """mutation($s: UUID!, $m: [MessageInput!]!) { addMessages(sessionId: $s, messages: $m) { sequence } }""",
        {
            "s": session,
            "m": [
                {"role": "USER", "content": "book a table"},
                {"role": "ASSISTANT", "toolCalls": [{"id": "b1", "name": "book", "arguments": {"n": 2}}]},
            ],
        },
    )
    result = await send(api, session, "never mind")
    assert result["run"]["status"] == "COMPLETED" and result["reply"]["content"] == "NEVER MIND"
    returns = [
        p
        for m in recorder.requests[-1]
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    ]
    assert [r.tool_call_id for r in returns] == ["b1"]  # closed out for the model


async def test_a_run_failing_after_a_tool_call_keeps_the_call_but_has_no_reply(api: Api, admin: Api) -> None:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        if not tool_returns(messages):
            yield call("save_memory", '{"key": "k", "value": 1}', "c1")
        else:
            raise ModelHTTPError(503, "m", body="down")
            yield ""

    agent = await make_agent(admin, stream)
    session = await new_session(api, agent)
    result = (await api.post(SEND, {"s": session, "c": "try", "k": None})).json()["data"]["sendMessage"]
    assert result["run"]["status"] == "FAILED" and result["run"]["error"]["code"] == "PROVIDER_ERROR"
    assert result["reply"] is None and result["run"]["reply"] is None
    assert [m["role"] for m in result["messages"]] == ["USER", "ASSISTANT", "TOOL"]
    assert result["run"]["usage"]["requests"] >= 1  # the request made before the failure counts
