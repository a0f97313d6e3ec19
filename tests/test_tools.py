"""Agents with tools from a real MCP server, and human approval of tool calls (API.md section 7)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall

from tests.conftest import Api, subscription
from tests.scripted import register

SEND = """mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) {
  run { id status pendingApprovals { toolCallId toolName arguments } error { code } }
  reply { content } messages { role content toolCalls { id name arguments } toolCallId } } }"""
RESOLVE = """mutation($r: UUID!, $d: [ApprovalDecision!]!) { resolveApprovals(runId: $r, decisions: $d) {
  id status pendingApprovals { toolCallId } reply { content } } }"""
AGENT = """query($n: String!) { agent(name: $n) {
  mcpServers { url allowedTools toolPrefix hasHeaders } approvalRequired
  tools { name description parameters requiresApproval server } } }"""


class McpServer:
    """``tests/mcp_server.py`` in a process of its own; ``calls()`` reads what really ran."""

    def __init__(self, tmp: Path, nameset: str = "all") -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tmp / f"mcp-{self.port}.jsonl"
        self.log.touch()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.mcp_server", str(self.port), str(self.log), nameset],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        async with asyncio.timeout(30):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    return
                except OSError:
                    assert self.process.poll() is None, "the MCP server exited"
                    await asyncio.sleep(0.05)

    def calls(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
async def mcp(tmp_path: Path) -> AsyncIterator[McpServer]:
    server = McpServer(tmp_path)
    try:
        await server.ready()
        yield server
    finally:
        server.stop()


def free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/mcp"


def calls_then_answers(tool: str, args: dict[str, Any]) -> Any:
    """A model that calls ``tool`` once, then answers with what the tool returned."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        last = messages[-1]
        returns = (
            [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
        )
        if returns and not any(isinstance(p, UserPromptPart) for p in last.parts):  # not a new prompt
            yield "result: " + " | ".join(str(r.content) for r in returns)
            return
        yield {
            0: DeltaToolCall(
                name=tool, json_args=json.dumps(args), tool_call_id=f"call-{uuid.uuid4().hex[:6]}"
            )
        }

    return stream


async def agent_with(admin: Api, stream: Any, **options: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    model = register(admin.rt.models, stream)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False, **options}},
    )
    return name


async def session_of(api: Api, agent: str) -> str:
    data = await api.gql(
        "mutation($n: String) { createSession(input: {agentName: $n}) { id } }", {"n": agent}
    )
    return str(data["createSession"]["id"])


async def send(api: Api, session: str, content: str) -> dict[str, Any]:
    payload: dict[str, Any] = (await api.gql(SEND, {"s": session, "c": content}))["sendMessage"]
    return payload


async def test_tools_listed_and_headers_kept_secret(api: Api, admin: Api, mcp: McpServer) -> None:
    servers = [{"url": mcp.url, "headers": {"x-secret": "s3cr3t"}, "allowedTools": ["add", "slow", "broken"]}]
    name = await agent_with(admin, calls_then_answers("add", {"a": 1, "b": 2}), mcpServers=servers)
    await admin.gql(
        'mutation($n: String!) { updateAgent(name: $n, input: {memoryEnabled: true, approvalRequired: ["slow"]}) { name } }',
        {"n": name},
    )
    resp = await api.post(AGENT, {"n": name})
    assert "s3cr3t" not in resp.text and "x-secret" not in resp.text
    agent = resp.json()["data"]["agent"]
    assert agent["mcpServers"] == [
        {"url": mcp.url, "allowedTools": ["add", "slow", "broken"], "toolPrefix": None, "hasHeaders": True}
    ]
    tools = {t["name"]: t for t in agent["tools"]}
    assert set(tools) == {
        "save_memory",
        "delete_memory",
        "add",
        "slow",
        "broken",
    }  # delete_everything filtered
    assert tools["add"]["server"] == mcp.url and tools["save_memory"]["server"] is None
    assert tools["add"]["description"] == "Add two integers."
    assert tools["add"]["parameters"]["properties"].keys() == {"a", "b"}
    assert tools["slow"]["requiresApproval"] and not tools["add"]["requiresApproval"]


async def test_a_call_runs_streams_persists_and_reaches_the_next_turn(
    api: Api, admin: Api, mcp: McpServer, schema: Any
) -> None:
    seen: list[list[ModelMessage]] = []
    inner = calls_then_answers("add", {"a": 2, "b": 3})

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        seen.append(messages)
        async for item in inner(messages, info):
            yield item

    servers = [{"url": mcp.url, "headers": {"x-secret": "abc"}}]
    session = await session_of(api, await agent_with(admin, stream, mcpServers=servers))
    query = """subscription($s: UUID!) { chat(sessionId: $s, content: "add please") { __typename
      ... on ToolCallStarted { toolName arguments } ... on ToolCallFinished { toolName result }
      ... on RunFinished { run { status reply { content } } } } }"""
    assert api.token is not None
    async with subscription(schema, api.rt, api.token, query, {"s": session}) as events:
        got = [e async for e in events]
    started = next(e for e in got if e["__typename"] == "ToolCallStarted")
    finished = next(e for e in got if e["__typename"] == "ToolCallFinished")
    assert started == {"__typename": "ToolCallStarted", "toolName": "add", "arguments": {"a": 2, "b": 3}}
    assert finished["result"] == 5
    assert got[-1]["run"] == {"status": "COMPLETED", "reply": {"content": "result: 5"}}
    assert mcp.calls() == [{"tool": "add", "args": {"a": 2, "b": 3}, "secret": "abc"}]  # the agent's header

    page = await api.gql(
        "query($s: UUID!) { messages(sessionId: $s) { edges { node { role toolCalls { name } toolCallId content } } } }",
        {"s": session},
    )
    roles = [e["node"]["role"] for e in page["messages"]["edges"]]
    assert roles == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    # The next turn sends the call and its result back to the model.
    await send(api, session, "again")
    returns = [p for m in seen[-1] for p in m.parts if isinstance(p, ToolReturnPart)]
    assert [r.content for r in returns][:1] == [5]


async def test_down_slow_and_failing_servers_give_error_results(
    api: Api, admin: Api, mcp: McpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that is down does not block saving; the model simply has none of its tools.
    down = await agent_with(
        admin, calls_then_answers("add", {"a": 1, "b": 1}), mcpServers=[{"url": free_url()}]
    )
    result = await send(api, await session_of(api, down), "add")
    assert result["run"]["status"] == "COMPLETED"
    assert "add" in result["reply"]["content"]  # the model was told the tool does not exist

    failing = await agent_with(admin, calls_then_answers("broken", {}), mcpServers=[{"url": mcp.url}])
    result = await send(api, await session_of(api, failing), "break it")
    assert result["run"]["status"] == "COMPLETED"
    assert "broke" in result["reply"]["content"]

    monkeypatch.setattr(admin.rt.tools, "tool_timeout_s", 0.5)
    slow = await agent_with(admin, calls_then_answers("slow", {"seconds": 5}), mcpServers=[{"url": mcp.url}])
    result = await send(api, await session_of(api, slow), "wait")
    assert result["run"]["status"] == "COMPLETED"
    assert "did not answer within 0.5 s" in result["reply"]["content"]


async def test_name_clashes_are_refused_unless_prefixed(admin: Api, mcp: McpServer, tmp_path: Path) -> None:
    twin = McpServer(tmp_path, "twin")
    try:
        await twin.ready()
        model = register(admin.rt.models, calls_then_answers("add", {}))
        create = "mutation($i: AgentInput!) { createAgent(input: $i) { name mcpServers { toolPrefix } } }"
        both = [{"url": mcp.url}, {"url": twin.url}]
        clash = {
            "name": f"c-{uuid.uuid4().hex[:6]}",
            "model": model,
            "memoryEnabled": False,
            "mcpServers": both,
        }
        error = await admin.error(create, {"i": clash})
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "toolPrefix" in error["message"]
        prefixed = {**clash, "mcpServers": [{"url": mcp.url}, {"url": twin.url, "toolPrefix": "twin"}]}
        made = (await admin.gql(create, {"i": prefixed}))["createAgent"]
        tools = (await admin.gql(AGENT, {"n": made["name"]}))["agent"]["tools"]
        assert {"add", "twin_add"} <= {t["name"] for t in tools}
        # The memory tools clash too.
        memory = {**clash, "name": f"m-{uuid.uuid4().hex[:6]}", "memoryEnabled": True, "mcpServers": []}
        await admin.gql(create, {"i": memory})
    finally:
        twin.stop()
    for bad in (
        {"url": "ftp://x"},
        {"url": mcp.url, "toolPrefix": "no spaces"},
        {"url": mcp.url, "headers": [1]},
    ):
        spec = {"name": f"b-{uuid.uuid4().hex[:6]}", "model": "echo", "mcpServers": [bad]}
        assert await admin.code(create, {"i": spec}) == "BAD_USER_INPUT"


async def test_approval_pause_approve_deny_and_edit(api: Api, other: Api, admin: Api, mcp: McpServer) -> None:
    name = await agent_with(
        admin,
        calls_then_answers("delete_everything", {"confirm": "yes"}),
        mcpServers=[{"url": mcp.url}],
        approvalRequired=["delete_everything"],
    )
    session = await session_of(api, name)
    paused = await send(api, session, "clean up")
    run = paused["run"]
    assert run["status"] == "WAITING_APPROVAL" and paused["reply"] is None
    (pending,) = run["pendingApprovals"]
    assert pending["toolName"] == "delete_everything" and pending["arguments"] == {"confirm": "yes"}
    assert [m["role"] for m in paused["messages"]] == ["USER", "ASSISTANT"]  # the call is persisted
    assert mcp.calls() == []  # nothing ran yet
    # The session stays busy; someone else cannot decide; every pending call needs a decision.
    assert await api.code(SEND, {"s": session, "c": "more"}) == "RUN_IN_PROGRESS"
    assert await other.code(RESOLVE, {"r": run["id"], "d": []}) == "NOT_FOUND"
    assert await api.code(RESOLVE, {"r": run["id"], "d": []}) == "BAD_USER_INPUT"
    unknown = [{"toolCallId": "nope", "approve": True}]
    assert await api.code(RESOLVE, {"r": run["id"], "d": unknown}) == "BAD_USER_INPUT"

    edited = [
        {"toolCallId": pending["toolCallId"], "approve": True, "arguments": {"confirm": "only temp files"}}
    ]
    done = (await api.gql(RESOLVE, {"r": run["id"], "d": edited}))["resolveApprovals"]
    assert done["status"] == "COMPLETED" and done["pendingApprovals"] == []
    assert done["reply"]["content"] == "result: deleted (only temp files)"
    assert [c["args"] for c in mcp.calls()] == [{"confirm": "only temp files"}]
    assert await api.code(RESOLVE, {"r": run["id"], "d": edited}) == "BAD_USER_INPUT"  # decided already

    # Denied: the tool never runs and the model reads the reason.
    again = (await send(api, session, "once more"))["run"]
    deny = [
        {"toolCallId": again["pendingApprovals"][0]["toolCallId"], "approve": False, "message": "not today"}
    ]
    denied = (await api.gql(RESOLVE, {"r": again["id"], "d": deny}))["resolveApprovals"]
    assert denied["reply"]["content"] == "result: not today"
    assert len(mcp.calls()) == 1
    # Usage adds up over both parts of the run.
    usage = await api.gql("query($r: UUID!) { run(id: $r) { usage { requests } } }", {"r": again["id"]})
    assert usage["run"]["usage"]["requests"] == 2


async def test_cancel_a_paused_run_and_memory_approval(api: Api, admin: Api) -> None:
    name = await agent_with(
        admin,
        calls_then_answers("save_memory", {"key": "color", "value": "blue"}),
        approvalRequired=["save_memory"],
    )
    await admin.gql(
        "mutation($n: String!) { updateAgent(name: $n, input: {memoryEnabled: true}) { name } }", {"n": name}
    )
    session = await session_of(api, name)
    run = (await send(api, session, "remember blue"))["run"]
    assert run["status"] == "WAITING_APPROVAL"
    memory = "query { memory { key value } }"
    assert (await api.gql(memory))["memory"] == []  # nothing saved before approval
    cancelled = await api.gql("mutation($r: UUID!) { cancelRun(id: $r) { status } }", {"r": run["id"]})
    assert cancelled["cancelRun"]["status"] == "CANCELLED"
    assert (await api.gql(memory))["memory"] == []
    # The session is free again; approving saves.
    run = (await send(api, session, "remember blue"))["run"]
    decide = [{"toolCallId": run["pendingApprovals"][0]["toolCallId"], "approve": True}]
    done = (await api.gql(RESOLVE, {"r": run["id"], "d": decide}))["resolveApprovals"]
    assert done["status"] == "COMPLETED"
    assert (await api.gql(memory))["memory"] == [{"key": "color", "value": "blue"}]


async def test_the_stream_stays_open_across_the_pause_and_another_process_resumes(
    api: Api, admin: Api, mcp: McpServer, schema: Any, other_runtime: Any
) -> None:
    name = await agent_with(
        admin,
        calls_then_answers("add", {"a": 20, "b": 22}),
        mcpServers=[{"url": mcp.url}],
        approvalRequired=["*"],
    )
    session = await session_of(api, name)
    chat = """subscription($s: UUID!) { chat(sessionId: $s, content: "sum") { __typename
      ... on ApprovalRequested { runId requests { toolCallId toolName arguments } }
      ... on ToolCallFinished { result } ... on RunFinished { run { status reply { content } } } } }"""
    watch = """subscription($s: UUID!) { sessionEvents(sessionId: $s) { __typename
      ... on ApprovalRequested { requests { toolName } } } }"""
    assert api.token is not None
    got: list[dict[str, Any]] = []
    async with subscription(schema, api.rt, api.token, chat, {"s": session}) as events:
        async with asyncio.timeout(30):
            async for event in events:
                got.append(event)
                if event["__typename"] == "ApprovalRequested":
                    break
            request = got[-1]
            # A watcher joining during the pause gets the run and its pending request.
            async with subscription(schema, api.rt, api.token, watch, {"s": session}) as late:
                joined = [await anext(late), await anext(late)]
            assert [e["__typename"] for e in joined] == ["RunStarted", "ApprovalRequested"]
            # Another process decides; this process's stream goes on to the end.
            from services.runs.approvals import Decision, resolve_approvals
            from services.users import authenticate

            user = await authenticate(f"Bearer {api.token}", other_runtime.settings)
            decision = Decision(request["requests"][0]["toolCallId"], True)
            resumed = await resolve_approvals(other_runtime, user, uuid.UUID(request["runId"]), [decision])
            assert resumed.status.value == "completed"
            async for event in events:
                got.append(event)
    kinds = [e["__typename"] for e in got]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert "ToolCallFinished" in kinds[kinds.index("ApprovalRequested") :]
    assert got[-1]["run"] == {"status": "COMPLETED", "reply": {"content": "result: 42"}}


async def test_a_pause_survives_the_stop_of_its_process(
    api: Api, admin: Api, mcp: McpServer, settings: Any
) -> None:
    from services.runs.approvals import Decision, resolve_approvals
    from services.runtime import Runtime
    from services.users import authenticate

    name = await agent_with(
        admin,
        calls_then_answers("add", {"a": 1, "b": 1}),
        mcpServers=[{"url": mcp.url}],
        approvalRequired=["add"],
    )
    session = await session_of(api, name)
    user = await authenticate(f"Bearer {api.token}", settings)
    async with Runtime(settings, settings.database_url).running() as elsewhere:
        elsewhere.models = admin.rt.models
        from services import runs

        result = await runs.send(elsewhere, user, uuid.UUID(session), runs.Ask("one plus one"))
        assert result.run.status.value == "waiting_approval"
        run_id = result.run.id
    # That process is gone (stopped cleanly): its pause is intact, never INTERRUPTED.
    view = await api.gql("query($r: UUID!) { run(id: $r) { status error { code } } }", {"r": str(run_id)})
    assert view["run"] == {"status": "WAITING_APPROVAL", "error": None}
    pending = result.run.pending_approvals[0]["tool_call_id"]
    done = await resolve_approvals(api.rt, user, run_id, [Decision(pending, True)])
    assert done.status.value == "completed"
    assert [c["tool"] for c in mcp.calls()] == ["add"]
