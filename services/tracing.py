"""Traces: a span per GraphQL operation, a span per run, and pydantic-ai's own spans under them.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (or a tracer provider is handed in, as the
tests do with an in-memory exporter). The provider belongs to the runtime, never to
OpenTelemetry's global one, so nothing else in the process is traced by accident; pydantic-ai
gets it through its ``InstrumentationSettings`` (GenAI semantic conventions: the agent run,
each model request with its token usage, each tool call). Message contents reach spans only
with ``PARLEY_TRACE_CONTENT=true``.

The SDK and the OTLP exporter are the optional extra ``parley[otel]``; the OpenTelemetry API
comes with pydantic-ai.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from pydantic_ai.models.instrumented import InstrumentationSettings

from services.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("parley.tracing")

TRACER_NAME = "parley"


class Tracing:
    def __init__(self, settings: Settings, provider: TracerProvider | None = None) -> None:
        self.include_content = settings.trace_content
        self._owned = False
        if provider is None and settings.otlp_endpoint:
            provider = _otlp_provider(settings.otlp_endpoint)
            self._owned = True
        self.provider = provider
        self.tracer: trace.Tracer | None = provider.get_tracer(TRACER_NAME) if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def agent_instrumentation(self) -> InstrumentationSettings | None:
        """How pydantic-ai's agents record their spans (None: not at all)."""
        if self.provider is None:
            return None
        return InstrumentationSettings(
            tracer_provider=self.provider,
            include_content=self.include_content,
            include_binary_content=self.include_content,
        )

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any]) -> Iterator[None]:
        """A span current for the block (nothing at all when tracing is off)."""
        if self.tracer is None:
            yield
            return
        with self.tracer.start_as_current_span(name, attributes=attributes):
            yield

    def close(self) -> None:
        """Send what is buffered (a provider handed in belongs to whoever made it)."""
        if self._owned and self.provider is not None:
            self.provider.shutdown()


def _otlp_provider(endpoint: str) -> TracerProvider:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
            "pip install 'parley[otel]'"
        ) from exc
    # The endpoint is OTLP/HTTP's base URL (the standard variable's meaning): spans go to /v1/traces.
    provider = TracerProvider(resource=Resource.create({"service.name": "parley"}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("sending traces to %s", endpoint)
    return provider
