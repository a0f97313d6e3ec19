"""Agent events across processes through PostgreSQL LISTEN/NOTIFY.

NOTIFY takes a cluster-wide lock at commit, so it is never sent per token: the events of a
run are buffered and flushed at most every FLUSH_S as one notification (several if large),
in the same statement that appends the run's new text to ``runs.partial_text``. A watcher
joining on another process reads that text as its snapshot. Large text travels as offsets
into ``partial_text`` instead of inline, keeping payloads well under PostgreSQL's 8,000 bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from models import Message, Run
from services import events
from services.database import acquire

log = logging.getLogger("parley.fanout")

CHANNEL = "parley_events"
FLUSH_S = 0.02
MAX_PAYLOAD = 7000
MAX_INLINE_TEXT = 2000
MAX_TOOL_JSON = 2000


@dataclass
class _Pending:
    session_id: uuid.UUID
    items: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""  # text appended since the last flush
    offset: int = 0  # characters of the run's text already flushed
    index: int = 0
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _compact(event: events.AgentEvent) -> dict[str, Any] | None:
    if isinstance(event, events.RunStarted):
        return {"t": "rs"}
    if isinstance(event, events.RunFinished):
        return {"t": "rf"}
    if isinstance(event, events.MessageAdded):
        return {"t": "ma", "m": str(event.message.id)}
    if isinstance(event, events.ThinkingDelta):
        return {"t": "th", "d": event.delta[:MAX_INLINE_TEXT]}
    if isinstance(event, events.ToolCallStarted):
        return {"t": "tc", "c": event.tool_call_id, "n": event.tool_name, "v": _bounded(event.arguments)}
    if isinstance(event, events.ToolCallFinished):
        return {"t": "tf", "c": event.tool_call_id, "n": event.tool_name, "v": _bounded(event.result)}
    return None


def _bounded(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= MAX_TOOL_JSON:
        return value
    return {"truncated": True, "preview": text[:MAX_TOOL_JSON]}


class Fanout:
    """One per process: publishes local runs' events, delivers other processes' events."""

    def __init__(self, owner_key: int, deliver: Callable[[uuid.UUID, events.AgentEvent], None]) -> None:
        self.owner_key = owner_key
        self._deliver = deliver
        self._pending: dict[uuid.UUID, _Pending] = {}
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.watched: Callable[[uuid.UUID], bool] = lambda _sid: True
        self.notifies = 0

    # --- publishing (runs of this process) -------------------------------------------------

    def publish(self, session_id: uuid.UUID, run_id: uuid.UUID, event: events.AgentEvent) -> None:
        pending = self._pending.get(run_id)
        if pending is None:
            pending = self._pending[run_id] = _Pending(session_id)
        if isinstance(event, events.TextDelta):
            pending.text += event.delta
            pending.index = event.index
            item: dict[str, Any] | None = {"t": "td"}
            if pending.items and pending.items[-1]["t"] == "td":
                item = None  # the text of consecutive deltas travels as one range
        else:
            item = _compact(event)
        if item is not None:
            pending.items.append(item)
        if pending.timer is None and not isinstance(event, events.RunFinished):
            loop = asyncio.get_running_loop()
            pending.timer = loop.call_later(FLUSH_S, lambda: asyncio.ensure_future(self.flush(run_id)))

    async def flush(
        self, run_id: uuid.UUID, conn: asyncpg.Connection | None = None, final: bool = False
    ) -> bool:
        """Send what a run has buffered (with ``conn``: inside the caller's transaction).

        True when a notification points into ``runs.partial_text`` (its text was too large
        to travel inline), so that text must outlive the run for a while.
        """
        pending = self._pending.get(run_id)
        if pending is None:
            return False
        if conn is not None:
            return await self._flush_on(conn, run_id, pending, final)
        if not pending.items:
            return False
        # A connection first, then the run's lock: whoever holds the lock also holds a
        # connection, so a full pool can never leave the lock's holder waiting for one.
        try:
            async with acquire() as own:
                return await self._flush_on(own, run_id, pending, final)
        except Exception:  # watchers elsewhere miss live text; persisted data is intact
            log.exception("could not publish events of run %s", run_id)
            return False

    async def _flush_on(
        self, conn: asyncpg.Connection, run_id: uuid.UUID, pending: _Pending, final: bool
    ) -> bool:
        async with pending.lock:  # one flush of a run at a time keeps its notifications in order
            if pending.timer is not None:
                pending.timer.cancel()
                pending.timer = None
            if final:
                self._pending.pop(run_id, None)
            if not pending.items:
                return False
            items, text = pending.items, pending.text
            pending.items, pending.text = [], ""
            start = pending.offset
            pending.offset += len(text)
            payloads = self._payloads(pending, run_id, items, text, start)
            await self._send(conn, run_id, text, pending.index, payloads)
            return any(item["t"] == "tr" for item in items)

    def _payloads(
        self, pending: _Pending, run_id: uuid.UUID, items: list[dict[str, Any]], text: str, start: int
    ) -> list[str]:
        head = {"o": self.owner_key, "s": str(pending.session_id), "r": str(run_id)}
        for item in items:
            if item["t"] == "td":
                item["i"] = pending.index
                if len(text) <= MAX_INLINE_TEXT:
                    item["d"] = text
                else:
                    item.update(t="tr", a=start, b=start + len(text))
        out: list[str] = []
        batch: list[dict[str, Any]] = []
        for item in items:
            candidate = json.dumps({**head, "e": [*batch, item]}, ensure_ascii=False)
            if batch and len(candidate.encode()) > MAX_PAYLOAD:
                out.append(json.dumps({**head, "e": batch}, ensure_ascii=False))
                batch = [item]
            else:
                batch.append(item)
        if batch:
            out.append(json.dumps({**head, "e": batch}, ensure_ascii=False))
        return out

    async def _send(
        self, conn: asyncpg.Connection, run_id: uuid.UUID, text: str, index: int, payloads: list[str]
    ) -> None:
        # One statement: the text a joining watcher reads and the notifications commit together.
        await conn.execute(
            """WITH u AS (UPDATE runs SET partial_text = partial_text || $2, partial_index = $3
                          WHERE id = $1 RETURNING 1)
               SELECT pg_notify($4, p) FROM unnest($5::text[]) AS p""",
            run_id,
            text,
            index,
            CHANNEL,
            payloads,
        )
        self.notifies += len(payloads)

    # --- receiving (runs of other processes) -----------------------------------------------

    def on_notify(self, payload: str) -> None:
        self._inbox.put_nowait(payload)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        # One consumer keeps events in order while it loads rows for them.
        while not self._inbox.empty():
            payload = self._inbox.get_nowait()
            try:
                await self._handle(payload)
            except Exception:
                log.exception("could not deliver a notification")

    async def _handle(self, payload: str) -> None:
        data = json.loads(payload)
        if data.get("o") == self.owner_key:
            return  # our own run: local watchers already have it
        session_id = uuid.UUID(data["s"])
        if not self.watched(session_id):
            return
        run_id = uuid.UUID(data["r"])
        for item in data["e"]:
            event = await self._event(run_id, item)
            if event is not None:
                self._deliver(session_id, event)

    async def _event(self, run_id: uuid.UUID, item: dict[str, Any]) -> events.AgentEvent | None:
        kind = item["t"]
        if kind in ("rs", "rf"):
            run = await Run.get_or_none(id=run_id)
            if run is None:
                return None
            return events.RunStarted(run) if kind == "rs" else events.RunFinished(run)
        if kind == "ma":
            message = await Message.get_or_none(id=uuid.UUID(item["m"]))
            return events.MessageAdded(message) if message is not None else None
        if kind == "td":
            return events.TextDelta(run_id, item["i"], item["d"])
        if kind == "tr":
            async with acquire() as conn:
                text = await conn.fetchval(
                    "SELECT substr(partial_text, $2, $3) FROM runs WHERE id = $1",
                    run_id,
                    item["a"] + 1,
                    item["b"] - item["a"],
                )
            return events.TextDelta(run_id, item["i"], text or "")
        if kind == "th":
            return events.ThinkingDelta(run_id, item["d"])
        if kind == "tc":
            return events.ToolCallStarted(run_id, item["c"], item["n"], item["v"])
        if kind == "tf":
            return events.ToolCallFinished(run_id, item["c"], item["n"], item["v"])
        return None
