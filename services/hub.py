"""In-process fan-out of agent events to the watchers of a session.

A watcher's queue is bounded: a subscriber that falls too far behind is dropped (its stream
ends; it can resume with ``afterSequence``) and never slows the run or other watchers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from services.events import AgentEvent, TextDelta

QUEUE_LIMIT = 1000


class Dropped(Exception):
    """The watcher fell too far behind and was dropped."""


class Watcher:
    def __init__(self, session_id: uuid.UUID) -> None:
        self.session_id = session_id
        self.queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        self.dropped = False

    def put(self, event: AgentEvent) -> None:
        if self.dropped:
            return
        if isinstance(event, TextDelta) and self.queue.qsize():
            # Coalesce with a delta still waiting in the queue: fewer, larger events.
            tail = self.queue._queue[-1]  # type: ignore[attr-defined]
            if isinstance(tail, TextDelta) and tail.run_id == event.run_id:
                tail.delta += event.delta
                tail.index = event.index
                return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)

    async def get(self) -> AgentEvent:
        event = await self.queue.get()
        if event is None:
            raise Dropped()
        return event


class Hub:
    def __init__(self) -> None:
        self._watchers: dict[uuid.UUID, set[Watcher]] = defaultdict(set)

    @contextmanager
    def watch(self, session_id: uuid.UUID) -> Iterator[Watcher]:
        watcher = Watcher(session_id)
        self._watchers[session_id].add(watcher)
        try:
            yield watcher
        finally:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[session_id]

    def emit(self, session_id: uuid.UUID, event: AgentEvent) -> None:
        for watcher in tuple(self._watchers.get(session_id, ())):
            watcher.put(_copy(event))

    def watched(self, session_id: uuid.UUID) -> bool:
        return bool(self._watchers.get(session_id))


def _copy(event: AgentEvent) -> AgentEvent:
    # Deltas are coalesced in place per watcher, so each watcher gets its own object.
    if isinstance(event, TextDelta):
        return TextDelta(event.run_id, event.index, event.delta)
    return event
