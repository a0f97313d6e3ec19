"""Why a run failed, as a code and a message safe to show a client.

Provider error bodies may carry secrets or prompts, so neither they nor exception texts reach
clients or logs: the code and message say what happened in Parley's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)

from services.errors import is_unavailable

ErrorCode = Literal[
    "INTERRUPTED",
    "TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "RATE_LIMITED",
    "PROVIDER_AUTH",
    "PROVIDER_ERROR",
    "PROVIDER_UNREACHABLE",
    "USAGE_LIMIT",
    "MODEL_ERROR",
    "MODEL_CONFIG",
    "INTERNAL_SERVER_ERROR",
]


@dataclass(frozen=True)
class RunError:
    code: ErrorCode
    message: str


SHUTDOWN = RunError("INTERRUPTED", "the server shut down before the reply finished")
LOST = RunError("INTERRUPTED", "the server lost its database connection before the reply finished")


def timed_out(seconds: float) -> RunError:
    return RunError("TIMEOUT", f"the reply took longer than {seconds:g}s")


def classify(exc: BaseException) -> RunError:
    """The code and client-safe message for an exception that ended a run."""
    if is_unavailable(exc) and not isinstance(exc, ModelAPIError):
        return RunError("SERVICE_UNAVAILABLE", "the database could not be reached during the reply; retry")
    if isinstance(exc, ModelTimeoutError | ModelRequestTimeout | TimeoutError):
        return RunError("TIMEOUT", "the model did not answer in time")
    if isinstance(exc, ModelRateLimitError):
        return RunError("RATE_LIMITED", "the model provider is rate limiting requests; retry later")
    if isinstance(exc, ModelAuthenticationError):
        return RunError("PROVIDER_AUTH", "the model provider rejected Parley's credentials")
    if isinstance(exc, ModelHTTPError):
        return RunError("PROVIDER_ERROR", f"the model provider answered HTTP {exc.status_code}")
    if isinstance(exc, ModelConnectionError):
        return RunError("PROVIDER_UNREACHABLE", "the model provider could not be reached or the stream broke")
    if isinstance(exc, ModelAPIError):
        return RunError("PROVIDER_ERROR", "the model provider failed")
    if isinstance(exc, UsageLimitExceeded):
        return RunError("USAGE_LIMIT", "the reply exceeded its usage limits")
    if isinstance(exc, UnexpectedModelBehavior):
        return RunError("MODEL_ERROR", "the model answered in an unexpected way")
    if isinstance(exc, UserError):
        return RunError(
            "MODEL_CONFIG", "the agent's model is not usable: check its model string and provider settings"
        )
    return RunError("INTERNAL_SERVER_ERROR", "the reply failed unexpectedly")


def describe(exc: BaseException) -> str:
    """For the server log: the exception's class and HTTP status only (bodies may hold secrets)."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' HTTP {status}' if status else ''}"
