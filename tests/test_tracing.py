"""Traces (API.md section 10): spans captured in memory, pydantic-ai's under the GraphQL operation's."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import Api
from tests.scripted import call, register, tool_returns
from tests.servers import parley_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "plum-42-zebra"


async def remembers(messages: Any, info: Any) -> Any:
    """Saves the user's words with a tool, then answers."""
    if not tool_returns(messages):
        args = '{"key": "fact", "value": "' + SECRET + '", "scope": "session"}'
        yield call("save_memory", args, "c1")
    else:
        yield f"Noted: {SECRET}."


Traced = Callable[..., Any]


@pytest.fixture
def traced(configured: Any) -> Traced:
    """An app whose spans go to memory: ``api, admin, exporter = await traced(trace_content=False)``."""

    async def make(**changes: Any) -> tuple[Api, Api, InMemorySpanExporter]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        api, admin = await configured(tracer_provider=provider, **changes)
        return api, admin, exporter

    return make


async def run_turn(api: Api, admin: Api) -> tuple[str, str]:
    model = register(admin.rt.models, remembers)
    name = f"t-{uuid.uuid4().hex[:8]}"
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }", {"i": {"name": name, "model": model}}
    )
    session = (
        await api.gql("mutation($n: String) { createSession(input: {agentName: $n}) { id } }", {"n": name})
    )["createSession"]["id"]
    sent = await api.gql(
        "mutation($s: UUID!, $c: String!) { sendMessage(sessionId: $s, content: $c) { run { id status } } }",
        {"s": session, "c": f"remember {SECRET}"},
    )
    run = sent["sendMessage"]["run"]
    assert run["status"] == "COMPLETED"
    return session, run["id"]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def descendants(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    found, todo = [], [root]
    while todo:
        for child in children(spans, todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def recorded(span: ReadableSpan) -> str:
    """Everything a span carries, as text."""
    events = [dict(e.attributes or {}) for e in span.events]
    return f"{span.name} {dict(span.attributes or {})} {events}"


async def test_agent_spans_nest_under_the_operation(traced: Traced) -> None:
    api, admin, exporter = await traced()
    session, run_id = await run_turn(api, admin)
    spans = list(exporter.get_finished_spans())

    (operation,) = [s for s in spans if s.name == "mutation sendMessage"]
    assert operation.kind is SpanKind.SERVER and operation.parent is None
    attributes = dict(operation.attributes or {})
    assert attributes["graphql.operation.type"] == "mutation"
    assert attributes["parley.session_id"] == session and attributes["parley.run_id"] == run_id

    (run,) = children(spans, operation)
    assert run.name == "parley run"
    assert dict(run.attributes or {})["parley.run_id"] == run_id
    assert dict(run.attributes or {})["parley.session_id"] == session

    (agent_run,) = children(spans, run)  # pydantic-ai's own, in the GenAI conventions
    assert dict(agent_run.attributes or {})["gen_ai.conversation.id"] == session
    below = descendants(spans, agent_run)
    requests = [s for s in below if "gen_ai.usage.input_tokens" in (s.attributes or {})]
    assert len(requests) == 2  # the tool call, then the answer
    assert all(int(str(dict(s.attributes or {}).get("gen_ai.usage.output_tokens", 0))) > 0 for s in requests)
    tools = [s for s in below if dict(s.attributes or {}).get("gen_ai.tool.name") == "save_memory"]
    assert len(tools) == 1

    # No content: not the message, the reply, the tool's arguments, nor the document.
    for span in spans:
        assert SECRET not in recorded(span), span.name
    assert "graphql.document" not in attributes


async def test_contents_only_when_asked(traced: Traced) -> None:
    api, admin, exporter = await traced(trace_content=True)
    await run_turn(api, admin)
    spans = list(exporter.get_finished_spans())
    assert any(SECRET in recorded(s) for s in spans if s.name != "mutation sendMessage")
    (operation,) = [s for s in spans if s.name == "mutation sendMessage"]
    assert "sendMessage" in str(dict(operation.attributes or {})["graphql.document"])


async def test_no_tracing_without_an_endpoint(api: Api) -> None:
    assert not api.rt.tracing.enabled
    assert api.rt.tracing.agent_instrumentation() is None


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps every span name it is sent."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                    self.received.append((span.name, attributes))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_spans_reach_an_otlp_collector(database_url: str, api: Api, tmp_path: Path) -> None:
    """A real `parley serve` with OTEL_EXPORTER_OTLP_ENDPOINT, and a collector over HTTP."""
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        with parley_server(database_url, tmp_path, "otlp", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                headers = {"Authorization": f"Bearer {api.token}"}
                created = await client.post(
                    "/graphql",
                    json={"query": "mutation { createSession(input: {}) { id } }"},
                    headers=headers,
                )
                session = created.json()["data"]["createSession"]["id"]
                sent = await client.post(
                    "/graphql",
                    json={
                        "query": 'mutation($s: UUID!) { sendMessage(sessionId: $s, content: "hi") { run { id } } }',
                        "variables": {"s": session},
                    },
                    headers=headers,
                )
                run_id = sent.json()["data"]["sendMessage"]["run"]["id"]
        # The server's stop sent what it had buffered.
        names = [name for name, _ in _Collector.received]
        assert {"mutation sendMessage", "parley run", "invoke_agent parley", "chat echo"} <= set(names)
        (run,) = [attributes for name, attributes in _Collector.received if name == "parley run"]
        assert run["parley.run_id"] == run_id and run["parley.session_id"] == session
    finally:
        collector.shutdown()
        collector.server_close()
        thread.join(timeout=10)


async def test_a_failed_run_marks_its_span(traced: Traced) -> None:
    from tests.test_budgets import agent_of, runaway
    from tests.test_runs import new_session, send

    api, admin, exporter = await traced()
    agent = await agent_of(admin, register(admin.rt.models, runaway), maxRequestsPerRun=2)
    run = (await send(api, await new_session(api, agent), "loop"))["run"]
    assert run["error"]["code"] == "USAGE_LIMIT"
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "parley run"]
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "USAGE_LIMIT"
    assert dict(span.attributes or {})["parley.status"] == "failed"
