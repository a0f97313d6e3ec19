"""Every GraphQL operation as operators see it: a trace span, metrics, a log line, the rate limit.

One extension, after ``Authenticate``, for queries, mutations and subscriptions alike (over
HTTP, WebSocket subscribe messages and Server-Sent Events):

* its span ("query sessions", "mutation sendMessage") is the current span while the operation
  runs, so a run it starts (a task copies the context) and pydantic-ai's spans nest under it;
* ``parley_graphql_operations_total{type,name,outcome}`` and the duration histogram. ``name``
  is the operation's root field(s) (``sendMessage``), not the client's operation name: root
  fields are bounded by the schema, names chosen by clients are not;
* a log line with the operation, its outcome and duration;
* PARLEY_RATE_LIMIT: an operation of a known caller takes one from the caller's bucket, else
  it fails with ``RATE_LIMITED`` and ``extensions.retryAfter`` before anything runs.

The document itself is recorded on the span only with ``PARLEY_TRACE_CONTENT=true``: inline
arguments may hold message text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import FieldNode, OperationDefinitionNode
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from strawberry.extensions import SchemaExtension

from resolvers.context import Context
from services import telemetry

log = logging.getLogger("parley.graphql")

MAX_NAMED_FIELDS = 3


class Operations(SchemaExtension):
    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        self.kind = "unknown"  # until the document is parsed and valid
        self.name = "-"

    def on_operation(self) -> Iterator[None]:
        ctx: Context = self.execution_context.context
        rt = ctx.runtime
        started = time.perf_counter()
        span = token = None
        if rt.tracing.tracer is not None:
            span = rt.tracing.tracer.start_span("graphql", kind=SpanKind.SERVER)
            token = otel_context.attach(trace.set_span_in_context(span))
        raised = False
        try:
            yield
        except Exception:  # a client closing its subscription (GeneratorExit, cancelled) is no error
            raised = True
            raise
        finally:
            seconds = time.perf_counter() - started
            ok = not raised and not _errors(self.execution_context.result)
            rt.metrics.operation(self.kind, self.name, ok, seconds)
            figures = {"outcome": "ok" if ok else "error", "duration_ms": round(seconds * 1000, 1)}
            log.info("%s %s", self.kind, self.name, extra={"figures": figures})
            if span is not None:
                if not ok:
                    span.set_status(Status(StatusCode.ERROR))
                span.end()
            if token is not None:
                otel_context.detach(token)

    async def on_execute(self) -> AsyncIterator[None]:
        # Parsed and valid by now: the root fields are the schema's own.
        ctx: Context = self.execution_context.context
        self.kind, self.name = _describe(self.execution_context)
        telemetry.bind(operation=f"{self.kind} {self.name}")
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{self.kind} {self.name}")
            span.set_attribute("graphql.operation.type", self.kind)
            if self.execution_context.operation_name:
                span.set_attribute("graphql.operation.name", self.execution_context.operation_name)
            if ctx.settings.trace_content and self.execution_context.query:
                span.set_attribute("graphql.document", self.execution_context.query)
        caller = ctx.caller
        if caller is not None and self.execution_context.result is None:
            await ctx.runtime.rate_limits.take(caller.id)  # RateLimited: nothing runs
        yield


def _describe(execution_context: Any) -> tuple[str, str]:
    """The operation's type and its root fields ("sessions", "createSession,sendMessage")."""
    document = execution_context.graphql_document
    wanted = execution_context.operation_name
    for definition in getattr(document, "definitions", ()):
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if wanted is not None and (definition.name is None or definition.name.value != wanted):
            continue
        names = sorted(
            {s.name.value for s in definition.selection_set.selections if isinstance(s, FieldNode)}
        ) or ["-"]
        name = ",".join(names[:MAX_NAMED_FIELDS]) + (",..." if len(names) > MAX_NAMED_FIELDS else "")
        return definition.operation.value, name
    return "unknown", "-"


def _errors(result: Any) -> bool:
    return bool(getattr(result, "errors", None))
