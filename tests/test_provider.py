"""The real provider path: agents on `openai-chat:gpt-4o-mini` talking to a local fake Chat Completions server.

pydantic-ai builds its OpenAI provider when a run creates the agent, reading OPENAI_BASE_URL and
OPENAI_API_KEY then; the `fake` fixture points them at tests/fake_openai.py's server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from tests.conftest import Api
from tests.fake_openai import SECRET, Broken, Error, FakeOpenAI, Text, ToolCall

MODEL = "openai-chat:gpt-4o-mini"
INSTRUCTIONS = "You are Parley's test agent. Answer briefly."

CREATE_AGENT = "mutation($input: AgentInput!) { createAgent(input: $input) { name model memoryEnabled } }"
CREATE_SESSION = "mutation($agent: String!) { createSession(input: {agentName: $agent}) { id } }"
SEND = """
mutation($s: UUID!, $c: String!) {
  sendMessage(sessionId: $s, content: $c) {
    run {
      id status model cost
      usage { requests inputTokens outputTokens totalTokens }
      error { code message }
      reply { id }
    }
    userMessage { id role content }
    reply { id role content model cost usage { requests inputTokens outputTokens } }
    messages { role content }
  }
}"""
MESSAGES = """
query($s: UUID!) {
  messages(sessionId: $s, first: 50) {
    edges { node { role content model toolCalls { id name arguments } toolCallId toolName } }
  }
}"""
ADD = "mutation($s: UUID!, $m: [MessageInput!]!) { addMessages(sessionId: $s, messages: $m) { role } }"
HISTORY = "query($s: UUID!) { session(id: $s) { history } }"
CHAT = """
subscription($s: UUID!, $c: String!) {
  chat(sessionId: $s, content: $c) {
    __typename
    ... on TextDelta { index delta }
    ... on MessageAdded { message { role content } }
    ... on RunFinished { run { status reply { content } } }
  }
}"""


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    fake_server.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    yield fake_server
    # Every scripted reply was asked for, the model was never called more often than planned, and
    # it was never sent a conversation OpenAI would reject.
    assert (fake_server.pending, fake_server.unscripted, fake_server.rejected) == (0, 0, [])


async def make_agent(admin: Api, memory: bool = False) -> str:
    name = f"local-{uuid.uuid4().hex[:8]}"
    data = await admin.gql(
        CREATE_AGENT,
        {"input": {"name": name, "model": MODEL, "instructions": INSTRUCTIONS, "memoryEnabled": memory}},
    )
    assert data["createAgent"] == {"name": name, "model": MODEL, "memoryEnabled": memory}
    return name


async def new_session(api: Api, agent: str) -> str:
    sid: str = (await api.gql(CREATE_SESSION, {"agent": agent}))["createSession"]["id"]
    return sid


async def send(api: Api, session_id: str, content: str) -> dict[str, Any]:
    sent: dict[str, Any] = (await api.gql(SEND, {"s": session_id, "c": content}))["sendMessage"]
    return sent


async def messages(api: Api, session_id: str) -> list[dict[str, Any]]:
    data = await api.gql(MESSAGES, {"s": session_id})
    return [e["node"] for e in data["messages"]["edges"]]


def sse_events(text: str) -> list[dict[str, Any]]:
    """The `next` payloads of a graphql-sse response."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip().splitlines()
        if "event: next" in lines:
            data = "".join(line[len("data: ") :] for line in lines if line.startswith("data: "))
            out.append(json.loads(data))
    return out


async def test_streamed_text_reply_is_persisted_with_usage_and_cost(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin))
    fake.script(Text("Hel", "lo, ", "wor", "ld!", input_tokens=21, output_tokens=7))

    turn = await send(api, session, "Say hello")

    run, reply = turn["run"], turn["reply"]
    assert run["status"] == "COMPLETED" and run["error"] is None
    assert reply["role"] == "ASSISTANT" and reply["content"] == "Hello, world!"
    assert run["reply"] == {"id": reply["id"]}
    assert run["model"] == MODEL and reply["model"] == "gpt-4o-mini"
    assert run["usage"] == {"requests": 1, "inputTokens": 21, "outputTokens": 7, "totalTokens": 28}
    assert reply["usage"] == {"requests": 1, "inputTokens": 21, "outputTokens": 7}
    assert run["cost"] > 0 and reply["cost"] > 0
    assert run["cost"] == pytest.approx(reply["cost"])
    assert [(m["role"], m["content"]) for m in turn["messages"]] == [
        ("USER", "Say hello"),
        ("ASSISTANT", "Hello, world!"),
    ]
    (request,) = fake.requests
    assert request.authorization == "Bearer test-key"
    assert request.body["model"] == "gpt-4o-mini" and request.body["stream"] is True
    assert request.conversation == [("system", INSTRUCTIONS), ("user", "Say hello")]


async def test_chat_subscription_streams_the_provider_deltas(fake: FakeOpenAI, admin: Api, api: Api) -> None:
    session = await new_session(api, await make_agent(admin))
    fake.script(Text("One ", "two ", "three."))

    resp = await api.post(CHAT, {"s": session, "c": "Count"}, Accept="text/event-stream")

    assert resp.status_code == 200
    events = [e["data"]["chat"] for e in sse_events(resp.text)]
    kinds = [e["__typename"] for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    deltas = [e for e in events if e["__typename"] == "TextDelta"]
    assert "".join(d["delta"] for d in deltas) == "One two three."
    indexes = [d["index"] for d in deltas]
    assert indexes == sorted(set(indexes)) and indexes[-1] == 3  # three model deltas, maybe coalesced
    added = [e["message"] for e in events if e["__typename"] == "MessageAdded"]
    assert added == [{"role": "USER", "content": "Count"}, {"role": "ASSISTANT", "content": "One two three."}]
    assert events[-1]["run"] == {"status": "COMPLETED", "reply": {"content": "One two three."}}


async def test_second_turn_sends_the_first_turn_as_history(fake: FakeOpenAI, admin: Api, api: Api) -> None:
    session = await new_session(api, await make_agent(admin))
    fake.script(Text("Nice to meet ", "you, Ana."), Text("Your name ", "is Ana."))

    first = await send(api, session, "My name is Ana.")
    second = await send(api, session, "What is my name?")

    assert first["run"]["status"] == second["run"]["status"] == "COMPLETED"
    assert second["reply"]["content"] == "Your name is Ana."
    assert len(fake.requests) == 2
    assert fake.requests[1].conversation == [
        ("system", INSTRUCTIONS),
        ("user", "My name is Ana."),
        ("assistant", "Nice to meet you, Ana."),
        ("user", "What is my name?"),
    ]
    assert [(m["role"], m["content"]) for m in await messages(api, session)] == [
        ("USER", "My name is Ana."),
        ("ASSISTANT", "Nice to meet you, Ana."),
        ("USER", "What is my name?"),
        ("ASSISTANT", "Your name is Ana."),
    ]


async def test_memory_tool_call_through_the_provider(fake: FakeOpenAI, admin: Api, api: Api) -> None:
    agent = await make_agent(admin, memory=True)
    session = await new_session(api, agent)
    args = {"key": "city", "value": "Lisbon", "scope": "user"}
    fake.script(
        ToolCall("save_memory", args, call_id="call_city", input_tokens=30, output_tokens=12),
        Text("I'll remember ", "that you live ", "in Lisbon.", input_tokens=45, output_tokens=9),
    )

    turn = await send(api, session, "I live in Lisbon.")

    assert turn["run"]["status"] == "COMPLETED", turn["run"]["error"]
    assert turn["reply"]["content"] == "I'll remember that you live in Lisbon."
    assert turn["run"]["usage"] == {"requests": 2, "inputTokens": 75, "outputTokens": 21, "totalTokens": 96}
    assert turn["run"]["cost"] > 0
    memory = await api.gql("{ memory(scope: USER) { key value scope } }")
    assert memory["memory"] == [{"key": "city", "value": "Lisbon", "scope": "USER"}]

    stored = await messages(api, session)
    assert [m["role"] for m in stored] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert stored[1]["content"] == ""
    assert stored[1]["toolCalls"] == [{"id": "call_city", "name": "save_memory", "arguments": args}]
    assert stored[2]["toolCallId"] == "call_city" and stored[2]["toolName"] == "save_memory"
    assert "city" in stored[2]["content"]
    assert stored[3]["content"] == "I'll remember that you live in Lisbon."

    first, second = fake.requests
    assert {t["function"]["name"] for t in first.body["tools"]} == {"save_memory", "delete_memory"}
    assert "Lisbon" not in " ".join(first.system)
    tool_message = second.messages[-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_city"
    assistant_call = second.messages[-2]["tool_calls"][0]
    assert assistant_call["id"] == "call_city" and json.loads(assistant_call["function"]["arguments"]) == args

    # A new session of the same user: the model is told what it remembers.
    other_session = await new_session(api, agent)
    fake.script(Text("You live ", "in Lisbon."))
    turn = await send(api, other_session, "Where do I live?")
    assert turn["reply"]["content"] == "You live in Lisbon."
    request = fake.requests[-1]
    # The agent's instructions and what it remembers (one or more system messages), then the new turn only.
    assert request.conversation[-1] == ("user", "Where do I live?")
    assert {r for r, _ in request.conversation[:-1]} == {"system"}
    system = "\n".join(request.system)
    assert INSTRUCTIONS in system and "city" in system and "Lisbon" in system


async def test_messages_added_elsewhere_reach_the_model_in_openai_form(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin))
    weather = {"city": "Paris"}
    recorded = [
        {"role": "USER", "content": "What's the weather in Paris?"},
        {
            "role": "ASSISTANT",
            "content": "",
            "toolCalls": [{"id": "call_w1", "name": "get_weather", "arguments": weather}],
        },
        {"role": "TOOL", "toolCallId": "call_w1", "content": "18°C and sunny"},
        {"role": "ASSISTANT", "content": "It is 18°C and sunny in Paris."},
    ]
    added = await api.gql(ADD, {"s": session, "m": recorded})
    assert [m["role"] for m in added["addMessages"]] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    fake.script(Text("Tomorrow ", "looks rainy."))

    turn = await send(api, session, "And tomorrow?")

    assert turn["run"]["status"] == "COMPLETED"
    (request,) = fake.requests
    sent = request.messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["content"] == "What's the weather in Paris?"
    (call,) = sent[2]["tool_calls"]
    assert call["id"] == "call_w1" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == weather
    assert sent[3]["tool_call_id"] == "call_w1" and sent[3]["content"] == "18°C and sunny"
    assert sent[4]["content"] == "It is 18°C and sunny in Paris."
    assert sent[5]["content"] == "And tomorrow?"


async def test_provider_http_500_fails_the_run_without_leaking(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin))
    fake.script(Error(), Error(), Error())  # the OpenAI client tries 1 + 2 retries

    resp = await api.post(SEND, {"s": session, "c": "Hello?"})

    assert resp.status_code == 200
    assert SECRET not in resp.text and "Traceback" not in resp.text and "upstream exploded" not in resp.text
    turn = resp.json()["data"]["sendMessage"]
    assert turn["run"]["status"] == "FAILED"
    assert turn["run"]["error"]["code"] == "PROVIDER_ERROR"
    assert turn["reply"] is None and turn["run"]["reply"] is None
    assert [(m["role"], m["content"]) for m in turn["messages"]] == [("USER", "Hello?")]
    assert len(fake.requests) == 3
    run_view = await api.post(
        "query($id: UUID!) { run(id: $id) { error { code message } } }", {"id": turn["run"]["id"]}
    )
    assert SECRET not in run_view.text
    assert [(m["role"], m["content"]) for m in await messages(api, session)] == [("USER", "Hello?")]

    # The provider is healthy again: the next turn completes and still sees the kept user message.
    fake.script(Text("Back ", "again."))
    turn = await send(api, session, "Are you there?")
    assert turn["run"]["status"] == "COMPLETED" and turn["reply"]["content"] == "Back again."
    assert fake.requests[-1].conversation == [
        ("system", INSTRUCTIONS),
        ("user", "Hello?"),
        ("user", "Are you there?"),
    ]
    assert [m["role"] for m in await messages(api, session)] == ["USER", "USER", "ASSISTANT"]


async def test_stream_broken_midway_fails_the_run_and_keeps_no_partial_reply(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin))
    fake.script(Broken("Partial ", "answ"))

    turn = await send(api, session, "Tell me a story")

    assert turn["run"]["status"] == "FAILED"
    assert turn["run"]["error"]["code"] == "PROVIDER_UNREACHABLE"
    assert turn["reply"] is None
    assert [(m["role"], m["content"]) for m in await messages(api, session)] == [("USER", "Tell me a story")]

    fake.script(Text("Once upon ", "a time."))
    turn = await send(api, session, "Try again")
    assert turn["run"]["status"] == "COMPLETED" and turn["reply"]["content"] == "Once upon a time."
    assert "Partial" not in json.dumps(fake.requests[-1].messages)


async def test_session_history_after_a_provider_run_round_trips(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin, memory=True))
    fake.script(
        ToolCall("save_memory", {"key": "pet", "value": "cat", "scope": "session"}, call_id="call_pet"),
        Text("Noted: ", "a cat."),
    )
    turn = await send(api, session, "I have a cat.")
    assert turn["run"]["status"] == "COMPLETED"

    history = (await api.gql(HISTORY, {"s": session}))["session"]["history"]

    msgs = ModelMessagesTypeAdapter.validate_python(history)
    assert ModelMessagesTypeAdapter.dump_python(msgs, mode="json") == history
    assert [type(m) for m in msgs] == [ModelRequest, ModelResponse, ModelRequest, ModelResponse]
    assert isinstance(msgs[0].parts[-1], UserPromptPart) and msgs[0].parts[-1].content == "I have a cat."
    (call,) = msgs[1].parts
    assert isinstance(call, ToolCallPart) and call.tool_call_id == "call_pet"
    (ret,) = msgs[2].parts
    assert isinstance(ret, ToolReturnPart) and ret.tool_call_id == "call_pet"
    last = msgs[-1]
    assert isinstance(last, ModelResponse)
    assert [p.content for p in last.parts if isinstance(p, TextPart)] == ["Noted: a cat."]
    assert last.model_name == "gpt-4o-mini"
    assert (last.usage.input_tokens, last.usage.output_tokens) == (21, 7)


async def test_provider_failure_after_a_tool_call_leaves_the_session_usable(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    session = await new_session(api, await make_agent(admin, memory=True))
    args = {"key": "city", "value": "Lisbon", "scope": "user"}
    fake.script(ToolCall("save_memory", args, call_id="call_city"), Error(), Error(), Error())

    turn = await send(api, session, "I live in Lisbon.")

    assert turn["run"]["status"] == "FAILED" and turn["run"]["error"]["code"] == "PROVIDER_ERROR"
    memory = await api.gql("{ memory(scope: USER) { key value } }")
    assert memory["memory"] == [{"key": "city", "value": "Lisbon"}]  # the tool did run
    # The call and its return are history; nothing is stored for the failed second request.
    stored = await messages(api, session)
    assert [m["role"] for m in stored] == ["USER", "ASSISTANT", "TOOL"]
    assert stored[1]["toolCalls"] == [{"id": "call_city", "name": "save_memory", "arguments": args}]
    assert stored[2]["toolCallId"] == "call_city"

    fake.script(Text("You live ", "in Lisbon."))
    turn = await send(api, session, "Where do I live?")

    assert turn["run"]["status"] == "COMPLETED", turn["run"]["error"]
    assert turn["reply"]["content"] == "You live in Lisbon."
    # The fake answers 400 to a tool call sent without its return; here the model sees both.
    sent = [m for m in fake.requests[-1].messages if m["role"] != "system"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == "call_city"


async def test_memory_approval_round_trip_through_the_provider(
    fake: FakeOpenAI, admin: Api, api: Api
) -> None:
    """The provider path of a paused run: the call is sent once, the decision goes back as its result."""
    agent = await make_agent(admin, memory=True)
    await admin.gql(
        'mutation($n: String!) { updateAgent(name: $n, input: {approvalRequired: ["save_memory"]}) { name } }',
        {"n": agent},
    )
    session = await new_session(api, agent)
    args = {"key": "city", "value": "Porto", "scope": "user"}
    fake.script(ToolCall("save_memory", args, call_id="call_porto"))
    paused = await api.gql(
        """mutation($s: UUID!) { sendMessage(sessionId: $s, content: "I moved to Porto.") {
             run { id status pendingApprovals { toolCallId toolName arguments } } } }""",
        {"s": session},
    )
    run = paused["sendMessage"]["run"]
    assert run["status"] == "WAITING_APPROVAL"
    assert run["pendingApprovals"] == [
        {"toolCallId": "call_porto", "toolName": "save_memory", "arguments": args}
    ]

    fake.script(Text("Noted: ", "I won't remember it."))
    done = await api.gql(
        """mutation($r: UUID!) { resolveApprovals(runId: $r, decisions: [
             {toolCallId: "call_porto", approve: false, message: "do not store where I live"}]) {
             status reply { content } } }""",
        {"r": run["id"]},
    )
    assert done["resolveApprovals"] == {
        "status": "COMPLETED",
        "reply": {"content": "Noted: I won't remember it."},
    }
    assert (await api.gql("{ memory(scope: USER) { key } }"))["memory"] == []
    _, second = fake.requests
    answer = second.messages[-1]
    assert answer["role"] == "tool" and answer["tool_call_id"] == "call_porto"
    assert "do not store where I live" in answer["content"]
