"""The replies running in this process, and what each has said so far."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Literal

from pydantic_ai import CancellationToken

from models import Run
from services.transcript import MessageRow

CancelReason = Literal["user", "shutdown", "lost"]


@dataclass
class TurnResult:
    run: Run
    user_message: MessageRow
    reply: MessageRow | None
    messages: list[MessageRow]  # the user message and everything the run persisted, in order


@dataclass
class RunHandle:
    """A reply running in this process."""

    run: Run
    token: CancellationToken = field(default_factory=CancellationToken)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: CancelReason | None = None
    index: int = 0  # model text deltas so far
    result: TurnResult | None = None  # set when the run has ended here
    _chunks: list[str] = field(default_factory=list)

    @classmethod
    def resumed(cls, run: Run) -> RunHandle:
        """A paused run going on here: what it said before the pause counts as said."""
        handle = cls(run=run, index=run.partial_index)
        if run.partial_text:
            handle._chunks.append(run.partial_text)
        return handle

    @property
    def session_id(self) -> uuid.UUID:
        return self.run.session_id

    def add_text(self, delta: str) -> None:
        self._chunks.append(delta)
        self.index += 1

    @property
    def text(self) -> str:
        """The run's text so far (joined on demand: only watchers that join late need it)."""
        if len(self._chunks) > 1:
            self._chunks[:] = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    def cancel(self, reason: CancelReason) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.token.cancel()


class RunRegistry:
    """This process's running replies. New turns are refused once the process is stopping."""

    def __init__(self) -> None:
        self.handles: dict[uuid.UUID, RunHandle] = {}
        self.accepting = True

    def get(self, run_id: uuid.UUID) -> RunHandle | None:
        return self.handles.get(run_id)

    def in_session(self, session_id: uuid.UUID) -> list[RunHandle]:
        return [h for h in self.handles.values() if h.session_id == session_id]

    def cancel_all(self, reason: CancelReason) -> list[RunHandle]:
        handles = list(self.handles.values())
        for handle in handles:
            handle.cancel(reason)
        return handles
