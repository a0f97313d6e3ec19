"""Prometheus metrics of a Parley process (API.md section 10), served at ``GET /metrics``.

The registry belongs to the runtime, never to prometheus-client's global default registry, so
several apps in one process (the tests) each count their own. Labels hold only bounded, safe
values: run status, the agent's model string, the token type, the GraphQL operation type, its
root fields and outcome; never a user, a token or any content.

Under ``parley serve --workers N`` every worker is its own process: prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set up by ``parley serve``) has each write its
figures to files in one directory, and whichever worker answers ``/metrics`` adds them all up.
That mode is chosen by prometheus-client itself, process-wide, from the variable when it is first
imported (its own module state, the one exception to "no global state" here): the variable must
be set before a worker starts, which is why ``parley serve`` does it and not the app.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# A run lasts from a fraction of a second (a short reply) to PARLEY_RUN_TIMEOUT (300 s).
RUN_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# The first token comes within milliseconds (a local model) to seconds (a busy provider).
FIRST_TOKEN_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Queries take milliseconds; a sendMessage lasts as long as its run; a subscription as long as it streams.
OPERATION_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0)

_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


class Metrics:
    def __init__(self, metrics_dir: Path | None = None, enabled: bool = True) -> None:
        self.metrics_dir = metrics_dir
        self.enabled = enabled  # PARLEY_METRICS=false: nothing is counted (and nothing served)
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "parley_runs_total", "Runs ended, by status and model.", ["status", "model"], registry=r
        )
        self.run_seconds = Histogram(
            "parley_run_duration_seconds",
            "How long runs took, from start to end.",
            ["model"],
            buckets=RUN_SECONDS,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "parley_time_to_first_token_seconds",
            "From a run's start to the model's first streamed text.",
            ["model"],
            buckets=FIRST_TOKEN_SECONDS,
            registry=r,
        )
        self.tokens = Counter(
            "parley_tokens_total",
            "Tokens used by ended runs (type: input, output).",
            ["model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "parley_cost_usd_total", "Cost of ended runs in USD, where priced.", ["model"], registry=r
        )
        # Gauges add up over live workers only (livesum): a dead worker's files are forgotten.
        self.active_runs = Gauge(
            "parley_active_runs", "Runs in progress in this process.", registry=r, multiprocess_mode="livesum"
        )
        self.active_subscriptions = Gauge(
            "parley_active_subscriptions",
            "Open GraphQL subscriptions.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.events_delivered = Counter(
            "parley_events_delivered_total", "Subscription events given to clients.", registry=r
        )
        self.operations = Counter(
            "parley_graphql_operations_total",
            "GraphQL operations by type, root field(s) and outcome (ok, error).",
            ["type", "name", "outcome"],
            registry=r,
        )
        self.operation_seconds = Histogram(
            "parley_graphql_operation_duration_seconds",
            "GraphQL operation durations (a subscription's: as long as it streamed).",
            ["type", "name"],
            buckets=OPERATION_SECONDS,
            registry=r,
        )
        self.db_pool_in_use = Gauge(
            "parley_db_pool_in_use",
            "Database connections checked out of the pool.",
            registry=r,
            multiprocess_mode="livesum",
        )

    @property
    def multiprocess(self) -> bool:
        return self.metrics_dir is not None

    # --- what the service counts --------------------------------------------------------------

    def run_ended(
        self,
        model: str,
        status: str,
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
        cost: float | None,
    ) -> None:
        if not self.enabled:
            return
        self.runs.labels(status, model).inc()
        self.run_seconds.labels(model).observe(seconds)
        if input_tokens:
            self.tokens.labels(model, "input").inc(input_tokens)
        if output_tokens:
            self.tokens.labels(model, "output").inc(output_tokens)
        if cost:
            self.cost.labels(model).inc(cost)

    def first_token(self, model: str, seconds: float) -> None:
        if self.enabled:
            self.first_token_seconds.labels(model).observe(seconds)

    def operation(self, kind: str, name: str, ok: bool, seconds: float) -> None:
        if self.enabled:
            self.operations.labels(kind, name, "ok" if ok else "error").inc()
            self.operation_seconds.labels(kind, name).observe(seconds)

    def event_delivered(self) -> None:
        if self.enabled:
            self.events_delivered.inc()

    @contextlib.contextmanager
    def subscription(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self.active_subscriptions.inc()
        try:
            yield
        finally:
            self.active_subscriptions.dec()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self.active_runs.inc()
        try:
            yield
        finally:
            self.active_runs.dec()

    # --- exposition -------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text format: this process's registry, or every worker's files in multiprocess mode."""
        if self.metrics_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        forget_dead_workers(self.metrics_dir)
        registry = CollectorRegistry()
        # prometheus-client leaves its multiprocess module unannotated.
        MultiProcessCollector(registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]  # unannotated upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_dead_workers(metrics_dir: Path) -> None:
    """Drop the live gauges of workers that died (uvicorn restarts them under new pids)."""
    for path in metrics_dir.glob("gauge_live*.db"):
        found = _LIVE_GAUGE_FILE.match(path.name)
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]  # unannotated upstream
        except PermissionError:  # alive, someone else's
            continue
