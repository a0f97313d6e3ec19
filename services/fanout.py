"""Agent events across processes through PostgreSQL LISTEN/NOTIFY.

NOTIFY takes a cluster-wide lock at commit, so it is never sent per token: a process buffers
the events of all its runs and one flusher task sends them every ``FLUSH_S`` in one statement,
which appends each run's new text to ``runs.partial_text`` and sends the events packed into as
few notifications as fit. A run's last events go out in the same commit as its final status.
A watcher joining on another process reads ``partial_text`` as its snapshot; large text
travels as a range into it instead of inline, keeping payloads under PostgreSQL's 8,000 bytes.

Nothing is flushed for a run while no other process watches its session: a watcher on another
process announces itself (``services/notices.py``, renewed every few seconds) and from the
next tick on, its session's runs are flushed from their first event. A run's end is always
told (without its text, which its stored messages carry, when nobody watched).

Only one flush is ever in flight. What a flush takes is given back if it fails (text offsets
advance only once the text is stored), so a failed flush delays events but never loses or
misplaces them. Incoming notifications wait in a bounded inbox drained by one task; past its
bound they are dropped and the watchers told to catch up from the database instead, as they
are when a text range can no longer be read.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field

import asyncpg

from models import Message, Run
from services import events, wire
from services.database import acquire
from services.hub import Hub, Resync
from services.liveness import EndedRun
from services.transcript import message_from_model

log = logging.getLogger("parley.fanout")

CHANNEL = "parley_events"
FLUSH_S = 0.02
RETRY_S = 0.5
MAX_PAYLOAD = 7000
MAX_INLINE_TEXT = 2000
INBOX_LIMIT = 10_000


WATCH_TTL_S = 15.0  # a watch announcement holds this long (watchers renew it every few seconds)


@dataclass
class _Pending:
    session_id: uuid.UUID
    items: list[wire.Item] = field(default_factory=list)
    offset: int = 0  # characters of the run's text stored in runs.partial_text so far
    index: int = 0  # model text deltas included in the items so far
    ephemeral: bool = False  # events outside a run: nothing to keep once sent
    ranged: bool = False  # a notification pointed into runs.partial_text: keep it after the run
    tail: list[str] = field(default_factory=list)  # text deltas after the last item, joined when taken

    def close_tail(self) -> None:
        if self.tail:
            self.items.append({"kind": "text", "index": self.index, "text": "".join(self.tail)})
            self.tail.clear()


@dataclass
class _Taken:
    run_id: uuid.UUID
    pending: _Pending
    items: list[wire.Item]
    start: int  # the run's text offset where these items' text begins
    extra: list[wire.Item] = field(default_factory=list)  # sent with them, never given back

    @property
    def text(self) -> str:
        return "".join(item["text"] for item in self.items if item["kind"] == "text")


@dataclass
class Batch:
    """Items taken for one flush; given back if the flush fails."""

    taken: list[_Taken]

    def has_ranges(self) -> bool:
        return any(_ranged(item) for t in self.taken for item in t.items)


def _ranged(item: wire.Item) -> bool:
    return item["kind"] == "text" and len(item["text"]) > MAX_INLINE_TEXT


class Fanout:
    """One per process: publishes local runs' events, delivers other processes' events."""

    def __init__(self, owner_key: int, hub: Hub) -> None:
        self.owner_key = owner_key
        self.hub = hub
        self._pending: dict[uuid.UUID, _Pending] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._inbox: deque[str] = deque()
        self._inbox_ready = asyncio.Event()
        self._overflowed = False
        self._watched_elsewhere: dict[uuid.UUID, float] = {}  # session → until when (loop time)

    # --- publishing (runs of this process) -------------------------------------------------

    def publish(self, session_id: uuid.UUID, run_id: uuid.UUID, event: events.AgentEvent) -> None:
        if run_id == session_id and not self.watched_elsewhere(session_id):
            return  # events outside a run that no other process follows: nothing to tell
        pending = self._pending.get(run_id)
        if pending is None:
            pending = self._pending[run_id] = _Pending(session_id, ephemeral=run_id == session_id)
        if isinstance(event, events.TextDelta):
            pending.tail.append(event.delta)  # consecutive deltas travel as one
            pending.index = event.index
        elif (item := wire.compact(event)) is not None:
            pending.close_tail()
            pending.items.append(item)
        if self.watched_elsewhere(session_id):
            self._wake.set()

    def watched_elsewhere(self, session_id: uuid.UUID) -> bool:
        until = self._watched_elsewhere.get(session_id)
        if until is None:
            return False
        if until < asyncio.get_running_loop().time():
            del self._watched_elsewhere[session_id]
            return False
        return True

    def note_watching(self, session_ids: list[uuid.UUID]) -> None:
        """Another process watches these sessions: their runs' events go out from now on."""
        until = asyncio.get_running_loop().time() + WATCH_TTL_S
        for session_id in session_ids:
            self._watched_elsewhere[session_id] = until
        if any(p.session_id in self._watched_elsewhere for p in self._pending.values()):
            self._wake.set()

    def resume(self, run_id: uuid.UUID, session_id: uuid.UUID, stored_chars: int, index: int) -> None:
        """A paused run goes on in this process: its text so far is in ``runs.partial_text``."""
        self._pending[run_id] = _Pending(session_id, offset=stored_chars, index=index)

    def forget(self, run_id: uuid.UUID) -> None:
        """The run ended and its last events went out (or it vanished)."""
        self._pending.pop(run_id, None)

    async def run_flusher(self) -> None:
        """Background task: at most one flush in flight, every FLUSH_S while events wait."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_S)  # gather what the runs say meanwhile into one statement
            self._wake.clear()
            if not await self.flush_all():
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def flush_all(self) -> bool:
        """Send everything pending; False when it could not be sent (it stays pending)."""
        # A connection first, then the lock: whoever holds the lock also holds a connection,
        # so a full pool can never leave the lock's holder waiting for one.
        try:
            async with acquire() as conn, self._lock:
                watched = [r for r, p in self._pending.items() if self.watched_elsewhere(p.session_id)]
                batch = self._take(watched)
                try:
                    await self._send(conn, batch)
                except BaseException:
                    self.give_back(batch)
                    raise
                self.committed(batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # watchers elsewhere wait; persisted data is intact
            log.warning("could not publish run events; retrying", exc_info=True)
            return False
        return True

    async def send_run(
        self,
        session_id: uuid.UUID,
        run_id: uuid.UUID,
        conn: asyncpg.Connection,
        last: list[events.AgentEvent],
    ) -> Batch:
        """A run's pending events and ``last`` ones, sent inside the caller's transaction (the
        one that ends the run), which must hold :meth:`exclusive`. The caller reports the
        transaction's outcome with :meth:`committed` or :meth:`give_back`.
        """
        assert self._lock.locked(), "send_run needs fanout.exclusive()"
        extra = [item for item in map(wire.compact, last) if item is not None]
        batch = self._take([run_id])
        if batch.taken and not self.watched_elsewhere(session_id):
            # Nobody elsewhere followed the run: its end is told, its text is in its messages.
            batch.taken[0].items = [i for i in batch.taken[0].items if i["kind"] != "text"]
        if not batch.taken:
            pending = self._pending.setdefault(run_id, _Pending(session_id))
            batch.taken.append(_Taken(run_id, pending, [], pending.offset))
        batch.taken[0].extra = extra
        await self._send(conn, batch)
        return batch

    def exclusive(self) -> asyncio.Lock:
        """Held while a flush is sent, so each run's notifications go out in order.

        Take it after a pooled connection and before any row lock of the transaction it guards:
        the flusher holds it while it updates run rows, so the other order would deadlock.
        """
        return self._lock

    def stored_text(self, run_id: uuid.UUID, batch: Batch) -> bool:
        """Whether the run's text went into ``runs.partial_text`` (before, or with ``batch``)."""
        pending = self._pending.get(run_id)
        return (pending is not None and pending.offset > 0) or any(t.text for t in batch.taken)

    def ranged(self, run_id: uuid.UUID) -> bool:
        """Whether a notification of the run pointed into its ``partial_text`` (keep that text)."""
        pending = self._pending.get(run_id)
        return pending is not None and pending.ranged

    def committed(self, batch: Batch) -> None:
        for taken in batch.taken:
            taken.pending.offset = taken.start + len(taken.text)
            taken.pending.ranged = taken.pending.ranged or any(_ranged(item) for item in taken.items)
            if taken.pending.ephemeral and not taken.pending.items:
                self._pending.pop(taken.run_id, None)

    def give_back(self, batch: Batch) -> None:
        for taken in batch.taken:
            taken.pending.items[:0] = taken.items
            self._pending.setdefault(taken.run_id, taken.pending)
        self._wake.set()

    def _take(self, run_ids: list[uuid.UUID]) -> Batch:
        taken: list[_Taken] = []
        for run_id in run_ids:
            pending = self._pending.get(run_id)
            if pending is not None:
                pending.close_tail()
            if pending is not None and pending.items:
                items, pending.items = pending.items, []
                taken.append(_Taken(run_id, pending, items, pending.offset))
        return Batch(taken)

    async def _send(self, conn: asyncpg.Connection, batch: Batch) -> None:
        if not batch.taken:
            return
        ids, texts, indexes = [], [], []
        for taken in batch.taken:
            text = taken.text
            if text and not taken.pending.ephemeral:
                ids.append(taken.run_id)
                texts.append(text)
                indexes.append(taken.pending.index)
        # One statement: the text a joining watcher reads and the notifications commit together.
        await conn.execute(
            """WITH u AS (UPDATE runs r SET partial_text = r.partial_text || v.t, partial_index = v.i
                          FROM unnest($1::uuid[], $2::text[], $3::int[]) AS v(id, t, i)
                          WHERE r.id = v.id RETURNING 1)
               SELECT pg_notify($4, p) FROM unnest($5::text[]) AS p""",
            ids,
            texts,
            indexes,
            CHANNEL,
            self._payloads(batch),
        )

    def _payloads(self, batch: Batch) -> list[str]:
        """Pack the runs' events into as few notifications as fit under MAX_PAYLOAD."""
        packer = wire.Packer(self.owner_key, MAX_PAYLOAD)
        for taken in batch.taken:
            offset = taken.start
            for item in taken.items:
                if item["kind"] == "text":
                    end = offset + len(item["text"])
                    if end - offset > MAX_INLINE_TEXT:
                        item = {"kind": "text_range", "index": item["index"], "start": offset, "end": end}
                    offset = end
                packer.add(taken.pending.session_id, taken.run_id, item)
            for item in taken.extra:
                packer.add(taken.pending.session_id, taken.run_id, item)
        return packer.payloads()

    async def announce_ended(self, conn: asyncpg.Connection, ended: list[EndedRun]) -> None:
        """Tell other processes' watchers that these runs ended (in the caller's transaction)."""
        packer = wire.Packer(self.owner_key, MAX_PAYLOAD)
        for run in ended:
            packer.add(run.session_id, run.run_id, {"kind": "run_finished"})
        payloads = packer.payloads()
        if payloads:
            await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads)

    # --- receiving (runs of other processes) -----------------------------------------------

    def on_notify(self, payload: str) -> None:
        if len(self._inbox) >= INBOX_LIMIT:
            # Too far behind to deliver event by event: watchers catch up from the database.
            self._inbox.clear()
            self._overflowed = True
        else:
            self._inbox.append(payload)
        self._inbox_ready.set()

    async def run_drain(self) -> None:
        """Background task: one consumer keeps events in order while it loads rows for them."""
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            if self._overflowed:
                self._overflowed = False
                log.warning("the notification inbox overflowed; watchers resync from the database")
                self.resync_all()
            while self._inbox:
                try:
                    await self._handle(self._inbox.popleft())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("could not deliver a notification")

    def resync_all(self) -> None:
        for session_id in self.hub.sessions():
            self.hub.deliver(session_id, Resync())

    async def _handle(self, payload: str) -> None:
        try:
            notice = wire.loads(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event notification")
            return
        if notice["owner"] == self.owner_key:
            return  # our own runs: local watchers already have them
        for block in notice["blocks"]:
            session_id = uuid.UUID(block["session"])
            if not self.hub.watched(session_id):
                continue
            run_id = uuid.UUID(block["run"])
            for item in block["events"]:
                event = await self._event(run_id, item)
                if event is None:  # its rows are gone or its text can no longer be read
                    self.hub.deliver(session_id, Resync())
                    break
                self.hub.deliver(session_id, event)

    async def _event(self, run_id: uuid.UUID, item: wire.Item) -> events.AgentEvent | None:
        if item["kind"] in ("run_started", "run_finished"):
            run = await Run.get_or_none(id=run_id)
            if run is None:
                return None
            return events.RunStarted(run) if item["kind"] == "run_started" else events.RunFinished(run)
        if item["kind"] == "approval_requested":
            paused = await Run.get_or_none(id=run_id)
            if paused is None:
                return None
            requests = [events.ApprovalRequest.stored(r) for r in paused.pending_approvals]
            return events.ApprovalRequested(run_id, requests)
        if item["kind"] == "message_added":
            message = await Message.get_or_none(id=uuid.UUID(item["message"]))
            return events.MessageAdded(message_from_model(message)) if message is not None else None
        if item["kind"] == "text_range":
            async with acquire() as conn:
                text = await conn.fetchval(
                    "SELECT substr(partial_text, $2, $3) FROM runs WHERE id = $1",
                    run_id,
                    item["start"] + 1,
                    item["end"] - item["start"],
                )
            if text is None or len(text) != item["end"] - item["start"]:
                return None
            return events.TextDelta(run_id, item["index"], text)
        return wire.expand(run_id, item)
