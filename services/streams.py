"""Live agent events for subscriptions: ``chat`` and ``sessionEvents``.

A watcher registers with the process's hub *before* it reads anything, then replays and
snapshots from the database, dropping live events it already covered: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models import Message, Run, RunStatus, User
from services import events, runs
from services.errors import NotFound, SubscriberTooSlow
from services.hub import Resync, SessionGone, Watcher, run_of
from services.owned import require_session
from services.transcript import message_from_model

if TYPE_CHECKING:
    from services.runtime import Runtime

REPLAY_PAGE = 500
TEXT_PACE_S = 0.015
LAG_PACE_FACTOR = 10.0
MAX_EXTRA_PACE_S = 0.2


@dataclass
class _Cursor:
    """What a watcher has already given its client."""

    session_id: uuid.UUID
    last_sequence: int = 0
    announced: set[uuid.UUID] = field(default_factory=set)  # runs whose RunStarted was sent
    text_index: dict[uuid.UUID, int] = field(default_factory=dict)
    finished: set[uuid.UUID] = field(default_factory=set)
    # Runs joined on another process before it told any text: its first delta holds all of it.
    awaiting_snapshot: set[uuid.UUID] = field(default_factory=set)

    def admit(self, event: events.AgentEvent) -> bool:
        """Whether a live event is new to this client (and note it)."""
        if isinstance(event, events.MessageAdded):
            if event.message.sequence <= self.last_sequence:
                return False
            self.last_sequence = event.message.sequence
            return True
        run_id = run_of(event)
        if isinstance(event, events.RunStarted):
            if event.run.id in self.announced:
                return False
            self.announced.add(event.run.id)
            return True
        if isinstance(event, events.RunFinished):
            if event.run.id in self.finished:
                return False
            self.finished.add(event.run.id)
            return True
        if run_id not in self.announced or run_id in self.finished:
            return False  # the client never saw this run start: its messages will carry the text
        if isinstance(event, events.TextDelta | events.TextSnapshot):
            if event.index <= self.text_index.get(run_id, 0):
                return False
            self.text_index[run_id] = event.index
        return True


async def _replay(cursor: _Cursor, after: int) -> AsyncGenerator[events.MessageAdded]:
    while True:
        rows = (
            await Message.filter(session_id=cursor.session_id, sequence__gt=after)
            .order_by("sequence")
            .limit(REPLAY_PAGE)
        )
        for message in rows:
            event = events.MessageAdded(message_from_model(message))
            if cursor.admit(event):
                yield event
        if len(rows) < REPLAY_PAGE:
            return
        after = rows[-1].sequence


def _local_snapshots(rt: Runtime, session_id: uuid.UUID) -> dict[uuid.UUID, tuple[Run, int, str]]:
    """Snapshots of this process's running replies, read with no await after registering."""
    return {h.run.id: (h.run, h.index, h.text) for h in rt.runs.in_session(session_id)}


async def _join_running(
    cursor: _Cursor, local: dict[uuid.UUID, tuple[Run, int, str]], only_run: uuid.UUID | None = None
) -> AsyncGenerator[events.AgentEvent]:
    """RunStarted + TextSnapshot for the session's running reply (+ ApprovalRequested when paused)."""
    query = Run.filter(
        session_id=cursor.session_id, status__in=[RunStatus.RUNNING, RunStatus.WAITING_APPROVAL]
    )
    if only_run is not None:
        query = query.filter(id=only_run)
    for run in await query:
        if run.id in local:
            _, index, text = local[run.id]
        else:  # another process runs it: its flushed text and index commit together
            index, text = run.partial_index, run.partial_text
        started = events.RunStarted(run)
        if cursor.admit(started):
            yield started
        paused = run.status == RunStatus.WAITING_APPROVAL
        if index > cursor.text_index.get(run.id, 0):
            cursor.text_index[run.id] = index
            yield events.TextSnapshot(run.id, index, text)
        elif run.id not in local and index == 0 and not paused:
            # Its owner flushes only once it hears of a watcher elsewhere (services/fanout.py),
            # and then from the run's first delta: that first delta is the snapshot.
            cursor.awaiting_snapshot.add(run.id)
        if paused:
            requests = [events.ApprovalRequest.stored(r) for r in run.pending_approvals]
            yield events.ApprovalRequested(run.id, requests)


async def _resync(cursor: _Cursor, only_run: uuid.UUID | None = None) -> AsyncGenerator[events.AgentEvent]:
    """After missed notifications: persisted messages, ended runs and running text from the DB."""
    async for added in _replay(cursor, cursor.last_sequence):
        if only_run is None or added.message.run_id == only_run:
            yield added
    for run_id in list(cursor.announced - cursor.finished):
        if only_run is not None and run_id != only_run:
            continue
        run = await Run.get_or_none(id=run_id)
        if run is not None and run.status not in (RunStatus.RUNNING, RunStatus.WAITING_APPROVAL):
            finished = events.RunFinished(run)
            if cursor.admit(finished):
                yield finished
    async for event in _join_running(cursor, {}, only_run):
        yield event


async def _live(
    rt: Runtime, watcher: Watcher, cursor: _Cursor, only_run: uuid.UUID | None = None
) -> AsyncGenerator[events.AgentEvent]:
    loop = asyncio.get_running_loop()
    last_text = 0.0
    while True:
        item = await watcher.get()
        if item is None:
            raise SubscriberTooSlow("the subscriber fell too far behind; resubscribe with afterSequence")
        if isinstance(item, SessionGone):
            return
        if isinstance(item, Resync):
            async for event in _resync(cursor, only_run):
                yield event
                if only_run is not None and isinstance(event, events.RunFinished):
                    return
            continue
        if only_run is not None and run_of(item) != only_run:
            continue
        if isinstance(item, events.TextDelta):
            if not cursor.admit(item):
                continue
            # Text goes out at most every TEXT_PACE_S per subscriber (longer while the process
            # is busy): what the model says meanwhile rides in the same event, so text costs
            # few events exactly when events are expensive.
            pace = TEXT_PACE_S + min(MAX_EXTRA_PACE_S, LAG_PACE_FACTOR * rt.loop_lag)
            wait = last_text + pace - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            watcher.absorb(item)
            cursor.text_index[item.run_id] = item.index
            last_text = loop.time()
            if item.run_id in cursor.awaiting_snapshot:
                cursor.awaiting_snapshot.discard(item.run_id)
                yield events.TextSnapshot(item.run_id, item.index, item.delta)
            else:
                yield item
            continue
        if cursor.admit(item):
            yield item
            if only_run is not None and isinstance(item, events.RunFinished):
                return


async def session_events(
    rt: Runtime, user: User, session_id: uuid.UUID, after_sequence: int | None
) -> AsyncGenerator[events.AgentEvent]:
    session = await require_session(user, session_id)
    with rt.hub.watch(session.id, hold=True) as watcher:
        local = _local_snapshots(rt, session.id)
        cursor = _Cursor(session.id)
        if after_sequence is not None:
            async for added in _replay(cursor, after_sequence):
                yield added
        else:
            cursor.last_sequence = await _last_sequence(session.id)
        async for event in _join_running(cursor, local):
            yield event
        watcher.release()
        async for event in _live(rt, watcher, cursor):
            yield event


async def _last_sequence(session_id: uuid.UUID) -> int:
    last = await Message.filter(session_id=session_id).order_by("-sequence").first()
    return last.sequence if last is not None else 0


async def chat(
    rt: Runtime, user: User, session_id: uuid.UUID | None, ask: runs.Ask
) -> AsyncGenerator[events.AgentEvent]:
    """Send a message (or edit one, or regenerate a reply: then ``session_id`` is None, the
    message names the session) and stream its run until RunFinished (the run outlives the client)."""
    session = await runs.session_for(user, session_id, ask)
    with rt.hub.watch(session.id, hold=True) as watcher:
        local = _local_snapshots(rt, session.id)
        started = await runs.start(rt, user, session, ask)
        run_id = started.run.id
        cursor = _Cursor(session.id)
        if started.created:
            watcher.release()  # we saw this run from its first event: nothing to dedupe
        else:
            async for event in _rejoin(cursor, started.run, local):
                yield event
                if isinstance(event, events.RunFinished):
                    return
            watcher.release()
        async for event in _live(rt, watcher, cursor, run_id):
            yield event


async def _rejoin(
    cursor: _Cursor, run: Run, local: dict[uuid.UUID, tuple[Run, int, str]]
) -> AsyncGenerator[events.AgentEvent]:
    """An idempotent retry of ``chat``: the first call's run, as a watcher would see it."""
    fresh = await Run.get_or_none(id=run.id)
    if fresh is None:
        raise NotFound.of("run", run.id)
    started = events.RunStarted(fresh)
    cursor.admit(started)
    yield started
    for message in await runs.run_messages(fresh):
        added = events.MessageAdded(message)
        if cursor.admit(added):
            yield added
    if fresh.status in (RunStatus.RUNNING, RunStatus.WAITING_APPROVAL):
        async for event in _join_running(cursor, local, fresh.id):
            yield event
    else:
        yield events.RunFinished(fresh)
