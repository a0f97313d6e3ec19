"""In-process fan-out of agent events to the watchers of a session.

A watcher's queue is bounded: text deltas that pile up are merged into one, and a watcher
that still falls too far behind is dropped (its stream ends; it can resume with
``afterSequence``). Neither ever slows the run or the other watchers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from services.events import (
    AgentEvent,
    MessageAdded,
    RunFinished,
    RunStarted,
    TextDelta,
    TextSnapshot,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
)

QUEUE_LIMIT = 2000  # events queued for one watcher ...
QUEUE_BYTES = 4 * 1024 * 1024  # ... and about this much text: past either, it is dropped


class Resync:
    """Queued after the cross-process listener reconnected: events may have been missed."""


class SessionGone:
    """Queued when the watched session was deleted: the stream ends."""


class Watcher:
    def __init__(self, session_id: uuid.UUID, *, hold: bool) -> None:
        self.session_id = session_id
        self._items: deque[AgentEvent | Resync | SessionGone] = deque()
        self._ready = asyncio.Event()
        self.dropped = False
        # While held (a joining watcher taking its snapshot) deltas are not merged, so no
        # queued delta straddles the snapshot's index.
        self.hold = hold
        self._tail_mergeable = False
        self._bytes = 0  # about how much the queued events weigh

    def put(self, event: AgentEvent | Resync | SessionGone) -> None:
        if self.dropped:
            return
        if isinstance(event, TextDelta):
            tail = self._items[-1] if self._items else None
            if (
                self._tail_mergeable
                and isinstance(tail, TextDelta)
                and tail.run_id == event.run_id
                and not self.hold
            ):
                tail.delta += event.delta
                tail.index = event.index
                self._grow(len(event.delta))
                return
            event = TextDelta(event.run_id, event.index, event.delta)  # ours to merge into
            self._tail_mergeable = not self.hold
        else:
            self._tail_mergeable = False
        if len(self._items) >= QUEUE_LIMIT:
            self._drop()
        else:
            self._items.append(event)
            self._grow(_weight(event))
        self._ready.set()

    def _grow(self, size: int) -> None:
        self._bytes += size
        if self._bytes > QUEUE_BYTES:
            self._drop()

    def _drop(self) -> None:
        """Fell too far behind: forget what is queued (get() then reports the drop)."""
        self.dropped = True
        self._items.clear()
        self._bytes = 0
        self._ready.set()

    def absorb(self, delta: TextDelta) -> None:
        """Merge the deltas of the same run queued right after ``delta`` into it."""
        while self._items:
            head = self._items[0]
            if not (isinstance(head, TextDelta) and head.run_id == delta.run_id):
                return
            self._items.popleft()
            self._bytes -= len(head.delta)
            delta.delta += head.delta
            delta.index = head.index
            if not self._items:
                self._tail_mergeable = False

    def release(self) -> None:
        self.hold = False

    async def get(self) -> AgentEvent | Resync | SessionGone | None:
        """The next event; None once the watcher was dropped for falling behind."""
        while not self._items:
            if self.dropped:
                return None
            self._ready.clear()
            await self._ready.wait()
        if not self._items:
            return None
        item = self._items.popleft()
        self._bytes -= _weight(item)
        if not self._items:
            self._tail_mergeable = False
            self._bytes = 0
        return item


def _weight(event: AgentEvent | Resync | SessionGone) -> int:
    """Roughly what an event holds in memory (text dominates)."""
    if isinstance(event, TextDelta | ThinkingDelta):
        return len(event.delta)
    if isinstance(event, TextSnapshot):
        return len(event.text)
    if isinstance(event, MessageAdded):
        return len(event.message.content) + len(event.message.model_message)
    if isinstance(event, ToolCallStarted):
        return len(repr(event.arguments))
    if isinstance(event, ToolCallFinished):
        return len(repr(event.result))
    return 64


def run_of(event: AgentEvent) -> uuid.UUID | None:
    if isinstance(event, RunStarted | RunFinished):
        return event.run.id
    if isinstance(event, MessageAdded):
        return event.message.run_id
    return getattr(event, "run_id", None)


class Hub:
    """This process's watchers of each session (other processes' events arrive via the fan-out)."""

    def __init__(self, on_first_watcher: Callable[[uuid.UUID], None] | None = None) -> None:
        self._watchers: dict[uuid.UUID, set[Watcher]] = defaultdict(set)
        self._on_first_watcher = on_first_watcher  # other processes learn who watches what

    @contextmanager
    def watch(self, session_id: uuid.UUID, *, hold: bool = False) -> Iterator[Watcher]:
        watcher = Watcher(session_id, hold=hold)
        first = session_id not in self._watchers
        self._watchers[session_id].add(watcher)
        if first and self._on_first_watcher is not None:
            self._on_first_watcher(session_id)
        try:
            yield watcher
        finally:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[session_id]

    def end_session(self, session_id: uuid.UUID) -> None:
        """The session was deleted (here or on another process): its streams end."""
        self.deliver(session_id, SessionGone())

    def deliver(self, session_id: uuid.UUID, event: AgentEvent | Resync | SessionGone) -> None:
        for watcher in tuple(self._watchers.get(session_id, ())):
            watcher.put(event)

    def watched(self, session_id: uuid.UUID) -> bool:
        return bool(self._watchers.get(session_id))

    def sessions(self) -> list[uuid.UUID]:
        return list(self._watchers)
