"""The format of event notifications between processes (the payload of ``parley_events``).

A notification is one JSON object::

    {"owner": <owner key of the sending process>,
     "blocks": [{"session": "<uuid>", "run": "<uuid>", "events": [<item>, ...]}, ...]}

Events outside a run (messages recorded with ``addMessages``) travel with ``run`` set to the
session id. Rows (runs, messages) travel as ids and are read by the receiver; large text
travels as a range of ``runs.partial_text``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal, TypedDict, cast

from services import events

MAX_TOOL_JSON = 2000  # tool arguments and results are cut to a preview beyond this


class RunItem(TypedDict):
    kind: Literal["run_started", "run_finished", "approval_requested"]  # read from the run's row


class MessageItem(TypedDict):
    kind: Literal["message_added"]
    message: str  # message id


class TextItem(TypedDict):
    kind: Literal["text"]
    index: int  # model text deltas included so far
    text: str


class TextRangeItem(TypedDict):
    kind: Literal["text_range"]
    index: int
    start: int  # characters of runs.partial_text: [start, end)
    end: int


class ThinkingItem(TypedDict):
    kind: Literal["thinking"]
    text: str


class ToolItem(TypedDict):
    kind: Literal["tool_started", "tool_finished"]
    call: str  # tool call id
    tool: str  # tool name
    value: Any  # arguments (started) or result (finished)


Item = RunItem | MessageItem | TextItem | TextRangeItem | ThinkingItem | ToolItem


class Block(TypedDict):
    session: str
    run: str
    events: list[Item]


class Notice(TypedDict):
    owner: int
    blocks: list[Block]


def compact(event: events.AgentEvent) -> Item | None:
    """An event as it travels (text deltas are merged by the caller)."""
    if isinstance(event, events.RunStarted):
        return {"kind": "run_started"}
    if isinstance(event, events.RunFinished):
        return {"kind": "run_finished"}
    if isinstance(event, events.MessageAdded):
        return {"kind": "message_added", "message": str(event.message.id)}
    if isinstance(event, events.ApprovalRequested):
        return {"kind": "approval_requested"}
    if isinstance(event, events.ThinkingDelta):
        return {"kind": "thinking", "text": event.delta[:MAX_TOOL_JSON]}
    if isinstance(event, events.ToolCallStarted):
        return {
            "kind": "tool_started",
            "call": event.tool_call_id,
            "tool": event.tool_name,
            "value": _bounded(event.arguments),
        }
    if isinstance(event, events.ToolCallFinished):
        return {
            "kind": "tool_finished",
            "call": event.tool_call_id,
            "tool": event.tool_name,
            "value": _bounded(event.result),
        }
    return None


def expand(run_id: uuid.UUID, item: Item) -> events.AgentEvent | None:
    """The event an item stands for, when it needs no row from the database."""
    if item["kind"] == "text":
        return events.TextDelta(run_id, item["index"], item["text"])
    if item["kind"] == "thinking":
        return events.ThinkingDelta(run_id, item["text"])
    if item["kind"] == "tool_started":
        return events.ToolCallStarted(run_id, item["call"], item["tool"], item["value"])
    if item["kind"] == "tool_finished":
        return events.ToolCallFinished(run_id, item["call"], item["tool"], item["value"])
    return None


def _bounded(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= MAX_TOOL_JSON:
        return value
    return {"truncated": True, "preview": text[:MAX_TOOL_JSON]}


class Packer:
    """Packs items into as few notifications as fit under a payload size."""

    def __init__(self, owner_key: int, max_payload: int) -> None:
        self.owner_key = owner_key
        self.max_payload = max_payload
        self._out: list[str] = []
        self._blocks: list[Block] = []
        self._size = 0
        self._key: tuple[uuid.UUID, uuid.UUID] | None = None

    def add(self, session_id: uuid.UUID, run_id: uuid.UUID, item: Item) -> None:
        item_size = len(json.dumps(item, ensure_ascii=False).encode()) + 1
        if self._blocks and self._size + item_size > self.max_payload:
            self._close()
        if self._key != (session_id, run_id) or not self._blocks:
            self._blocks.append({"session": str(session_id), "run": str(run_id), "events": []})
            self._key = (session_id, run_id)
            self._size += 100
        self._blocks[-1]["events"].append(item)
        self._size += item_size

    def _close(self) -> None:
        notice: Notice = {"owner": self.owner_key, "blocks": self._blocks}
        self._out.append(json.dumps(notice, ensure_ascii=False))
        self._blocks, self._size, self._key = [], 0, None

    def payloads(self) -> list[str]:
        if self._blocks:
            self._close()
        return self._out


def loads(payload: str) -> Notice:
    data = json.loads(payload)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("owner"), int)
        or not isinstance(data.get("blocks"), list)
    ):
        raise ValueError("not an event notification")
    return cast(Notice, data)  # its shape is checked above; items are read by kind
