"""Agent runs: one reply of the session's agent to a user message.

``turns`` starts runs (one per session, idempotent) and waits for them; ``cancels`` stops
them; ``approvals`` resumes a run paused for a person's decision; ``executor`` drives
pydantic-ai and persists what it produces, ``outcome`` reads how a run ended; ``relay`` turns
pydantic-ai's stream events into Parley's; ``failures`` names what went wrong; ``agent`` builds
the pydantic-ai agent and the memory tools; ``handles`` keeps this process's running replies;
``telemetry`` counts and traces them.
"""

from services.runs.cancels import cancel_run
from services.runs.handles import RunHandle, RunRegistry, TurnResult
from services.runs.turns import (
    Ask,
    Started,
    active_runs_for,
    find_run,
    run_messages,
    send,
    session_for,
    start,
    start_turn,
    wait_finished,
)

__all__ = [
    "Ask",
    "RunHandle",
    "RunRegistry",
    "Started",
    "TurnResult",
    "active_runs_for",
    "cancel_run",
    "find_run",
    "run_messages",
    "send",
    "session_for",
    "start",
    "start_turn",
    "wait_finished",
]
