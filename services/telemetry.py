"""What every log line and trace span says about where it comes from, and the JSON log format.

A request (or WebSocket connection) begins with a fresh set of fields (``request_id``); the
services add ``user``, ``session_id``, ``run_id`` and ``operation`` as they learn them. The fields
live in a ContextVar: each request and each task sees its own (a run's task starts with a copy
of the fields of the request that started it), so nothing is shared between requests. They are
also set as attributes (``parley.<field>``) on the current trace span.

``PARLEY_LOG_FORMAT=json`` gives one JSON object per line (:class:`JsonFormatter`) with those
fields. No log line carries a token or message content: callers log ids, codes, counts and
durations only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# Context-local, not process state: every request and task has its own value.
_FIELDS: ContextVar[Mapping[str, str]] = ContextVar("parley_log_fields", default={})  # noqa: B039


def begin(request_id: str) -> None:
    """A new request or connection: its lines carry ``request_id`` and nothing of the previous one."""
    _FIELDS.set({"request_id": request_id})


def bind(**fields: object) -> None:
    """Add fields to the log lines of this request or task from now on, and to its current span."""
    values = {key: str(value) for key, value in fields.items() if value is not None}
    current = _FIELDS.get()
    if all(current.get(key) == value for key, value in values.items()):
        return
    _FIELDS.set({**current, **values})
    span = trace.get_current_span()
    if span.is_recording():
        for key, value in values.items():
            span.set_attribute(f"parley.{key}", value)


def fields() -> Mapping[str, str]:
    return _FIELDS.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the context fields and the
    record's own figures (``extra={"figures": {...}}``, e.g. durations)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_FIELDS.get())
        figures = getattr(record, "figures", None)
        if isinstance(figures, dict):
            entry.update(figures)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(log_format: str, level: str) -> dict[str, Any] | None:
    """logging.dictConfig for uvicorn's ``log_config``: None keeps uvicorn's own (text)."""
    if log_format != "json":
        return None
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        # uvicorn's loggers propagate to the root; its access lines are replaced by Parley's own
        # (web/request_ids.py: request id, status, duration, the path without its query string).
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level},
            "uvicorn.access": {"level": "WARNING"},
        },
    }
