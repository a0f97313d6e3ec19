"""A run as operators see it: its trace span, the active-runs gauge, its figures and log line."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from services import telemetry
from services.runs.handles import RunHandle

if TYPE_CHECKING:
    from services.runtime import Runtime

log = logging.getLogger("parley.runs")


@contextlib.contextmanager
def observed(rt: Runtime, handle: RunHandle) -> Iterator[None]:
    run = handle.run
    telemetry.bind(session_id=run.session_id, run_id=run.id)
    attributes = {
        "parley.run_id": str(run.id),
        "parley.session_id": str(run.session_id),
        "parley.model": run.model,
    }
    with rt.tracing.span("parley run", attributes), rt.metrics.running():
        try:
            yield
        finally:
            _ended(rt, handle, time.monotonic() - handle.started)


def _ended(rt: Runtime, handle: RunHandle, seconds: float) -> None:
    if handle.result is None:  # its end could not be recorded (the process is stopping)
        return
    run = handle.result.run
    rt.metrics.run_ended(run.model, run.status, seconds, run.input_tokens, run.output_tokens, run.cost)
    figures = {
        "status": str(run.status),
        "model": run.model,
        "duration_ms": round(seconds * 1000, 1),
        "requests": run.requests,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "cost": run.cost,
        "error_code": run.error_code,
    }
    log.info("run ended: %s", run.status, extra={"figures": figures})
    span = trace.get_current_span()  # the run's own, when tracing
    if span.is_recording():
        span.set_attribute("parley.status", str(run.status))
        if run.error_code:
            span.set_status(Status(StatusCode.ERROR, run.error_code))
