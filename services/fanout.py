"""Agent events across processes through PostgreSQL LISTEN/NOTIFY.

NOTIFY takes a cluster-wide lock at commit, so it is never sent per token: a process buffers
the events of all its runs and flushes them every FLUSH_S in one statement, which appends
each run's new text to ``runs.partial_text`` and sends the events packed into as few
notifications as fit (a run's end is flushed in the same commit as its final status). A
watcher joining on another process reads ``partial_text`` as its snapshot. Large text travels
as offsets into it instead of inline, keeping payloads well under PostgreSQL's 8,000 bytes.
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
    items: list[dict[str, Any]] = field(default_factory=list)  # "td" items carry text "d"
    offset: int = 0  # characters of the run's text already flushed
    index: int = 0
    ephemeral: bool = False


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
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.watched: Callable[[uuid.UUID], bool] = lambda _sid: True

    # --- publishing (runs of this process) -------------------------------------------------

    def publish(self, session_id: uuid.UUID, run_id: uuid.UUID, event: events.AgentEvent) -> None:
        pending = self._pending.get(run_id)
        if pending is None:
            pending = self._pending[run_id] = _Pending(session_id)
        if run_id == session_id:
            pending.ephemeral = True  # events outside a run: nothing to keep once sent
        if isinstance(event, events.TextDelta):
            last = pending.items[-1] if pending.items else None
            if last is not None and last["t"] == "td":
                last["d"] += event.delta  # consecutive deltas travel as one
                last["i"] = event.index
            else:
                pending.items.append({"t": "td", "d": event.delta, "i": event.index})
            pending.index = event.index
        elif (item := _compact(event)) is not None:
            pending.items.append(item)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if any(p.items for p in self._pending.values()):
            task = asyncio.get_running_loop().create_task(self._flush_all())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush_all(self) -> None:
        # A connection first, then the lock: whoever holds the lock also holds a connection,
        # so a full pool can never leave the lock's holder waiting for one.
        try:
            async with acquire() as conn, self._lock:
                await self._send(conn, self._take(list(self._pending)))
        except Exception:  # watchers elsewhere miss live text; persisted data is intact
            log.exception("could not publish run events")

    async def flush(self, run_id: uuid.UUID, conn: asyncpg.Connection) -> bool:
        """A run's last events, sent inside the caller's transaction (the one that ends it).

        True when a notification points into ``runs.partial_text`` (its text was too large to
        travel inline), so that text must outlive the run for a while.
        """
        async with self._lock:  # flushes in order keep each run's notifications in order
            taken = self._take([run_id])
            self._pending.pop(run_id, None)
            await self._send(conn, taken)
        return any(item["t"] == "tr" for _, _, items in taken for item in items)

    def _take(self, run_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, _Pending, list[dict[str, Any]]]]:
        taken = []
        for run_id in run_ids:
            pending = self._pending.get(run_id)
            if pending is None or not pending.items:
                continue
            items, pending.items = pending.items, []
            if pending.ephemeral:
                del self._pending[run_id]
            for item in items:
                if item["t"] == "td":
                    start = pending.offset
                    pending.offset += len(item["d"])
                    if len(item["d"]) > MAX_INLINE_TEXT:
                        item["a"], item["b"], item["t"] = start, pending.offset, "tr"
                        item["text"] = item.pop("d")
            taken.append((run_id, pending, items))
        return taken

    async def _send(
        self, conn: asyncpg.Connection, taken: list[tuple[uuid.UUID, _Pending, list[dict[str, Any]]]]
    ) -> None:
        if not taken:
            return
        ids, texts, indexes = [], [], []
        for run_id, pending, items in taken:
            text = "".join(i.get("d") or i.get("text", "") for i in items if i["t"] in ("td", "tr"))
            if text:
                ids.append(run_id)
                texts.append(text)
                indexes.append(pending.index)
        for _, _, items in taken:
            for item in items:
                item.pop("text", None)
        payloads = self._payloads(taken)
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
            payloads,
        )

    def _payloads(self, taken: list[tuple[uuid.UUID, _Pending, list[dict[str, Any]]]]) -> list[str]:
        """Pack the runs' events into as few notifications as fit under MAX_PAYLOAD."""
        out: list[str] = []
        blocks: list[dict[str, Any]] = []
        size = 0
        for run_id, pending, items in taken:
            block: dict[str, Any] | None = None
            for item in items:
                item_size = len(json.dumps(item, ensure_ascii=False).encode()) + 1
                if blocks and size + item_size > MAX_PAYLOAD:
                    out.append(json.dumps({"o": self.owner_key, "b": blocks}, ensure_ascii=False))
                    blocks, size, block = [], 0, None
                if block is None:
                    block = {"s": str(pending.session_id), "r": str(run_id), "e": []}
                    blocks.append(block)
                    size += 100
                block["e"].append(item)
                size += item_size
        if blocks:
            out.append(json.dumps({"o": self.owner_key, "b": blocks}, ensure_ascii=False))
        return out

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
            return  # our own runs: local watchers already have them
        for block in data["b"]:
            session_id = uuid.UUID(block["s"])
            if not self.watched(session_id):
                continue
            run_id = uuid.UUID(block["r"])
            for item in block["e"]:
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
