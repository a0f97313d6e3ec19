"""pydantic-ai messages ⇄ stored message rows.

A row keeps the exact ``ModelMessage`` JSON it came from, so history round-trips byte for byte.
A request with several parts (parallel tool returns) becomes several rows sharing
``part_group``; :func:`to_history` merges them back into one request.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from models import Role


@dataclass
class RowDraft:
    """A message row before it has a sequence."""

    role: Role
    content: str
    model_message: dict[str, Any]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None
    model: str | None = None
    usage: dict[str, int] | None = None
    cost: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    grouped: bool = False  # shares its pydantic-ai message with the previous draft
    id: uuid.UUID = field(default_factory=uuid.uuid4)  # known before it is stored

    @property
    def model_message_json(self) -> str:
        return json.dumps(self.model_message, separators=(",", ":"), ensure_ascii=False)


def dump(message: ModelMessage) -> dict[str, Any]:
    dumped: dict[str, Any] = ModelMessagesTypeAdapter.dump_python([message], mode="json")[0]
    return dumped


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        return "".join(c for c in content if isinstance(c, str))
    return json.dumps(content, ensure_ascii=False, default=str)


def tool_arguments(part: ToolCallPart) -> Any:
    try:
        return part.args_as_dict()
    except Exception:  # arguments a model produced may be broken JSON: keep them as text
        return part.args


def response_cost(response: ModelResponse) -> float | None:
    try:
        return float(response.cost().total_price)
    except (LookupError, ValueError, AttributeError):
        return None


def drafts_from(message: ModelMessage) -> list[RowDraft]:
    """Rows for one pydantic-ai message (a response is one ASSISTANT row)."""
    envelope = dump(message)
    if isinstance(message, ModelResponse):
        text = "".join(p.content for p in message.parts if isinstance(p, TextPart))
        calls = [
            {"id": p.tool_call_id, "name": p.tool_name, "arguments": tool_arguments(p)}
            for p in message.parts
            if isinstance(p, ToolCallPart)
        ]
        u = message.usage
        return [
            RowDraft(
                role=Role.ASSISTANT,
                content=text,
                tool_calls=calls,
                model_message=envelope,
                model=message.model_name,
                usage={"requests": 1, "input_tokens": u.input_tokens, "output_tokens": u.output_tokens},
                cost=response_cost(message),
            )
        ]
    drafts: list[RowDraft] = []
    for i, (part, part_json) in enumerate(zip(message.parts, envelope["parts"], strict=True)):
        own = dict(envelope, parts=[part_json])
        draft = _request_part(part, own)
        draft.grouped = i > 0
        drafts.append(draft)
    if not drafts:  # an empty request still belongs to the history
        drafts.append(RowDraft(role=Role.SYSTEM, content="", model_message=envelope))
    return drafts


def _request_part(part: Any, own: dict[str, Any]) -> RowDraft:
    if isinstance(part, UserPromptPart):
        return RowDraft(role=Role.USER, content=_text(part.content), model_message=own)
    if isinstance(part, SystemPromptPart):
        return RowDraft(role=Role.SYSTEM, content=part.content, model_message=own)
    if isinstance(part, ToolReturnPart):
        return RowDraft(
            role=Role.TOOL,
            content=_text(part.content),
            tool_call_id=part.tool_call_id,
            tool_name=part.tool_name,
            model_message=own,
        )
    if isinstance(part, RetryPromptPart):
        return RowDraft(
            role=Role.TOOL,
            content=part.model_response(),
            tool_call_id=part.tool_call_id,
            tool_name=part.tool_name,
            model_message=own,
        )
    return RowDraft(role=Role.SYSTEM, content=_text(getattr(part, "content", "")), model_message=own)


@dataclass
class StoredRow:
    """What history needs of a stored row."""

    sequence: int
    role: Role
    part_group: int | None
    model_message: str


def _merged(rows: list[StoredRow]) -> list[str]:
    """Each pydantic-ai message's JSON text; rows of one split request are merged back."""
    out: list[str] = []
    group: list[StoredRow] = []

    def close() -> None:
        if group:
            first = json.loads(group[0].model_message)
            for row in group[1:]:
                first["parts"].extend(json.loads(row.model_message)["parts"])
            out.append(json.dumps(first, separators=(",", ":"), ensure_ascii=False))
            group.clear()

    for row in rows:
        if row.part_group is not None and group and group[0].part_group == row.part_group:
            group.append(row)
            continue
        close()
        if row.part_group is not None:
            group.append(row)
        else:
            out.append(row.model_message)  # stored text, used as is
    close()
    return out


def to_history_json(rows: list[StoredRow]) -> list[dict[str, Any]]:
    """ModelMessage JSON (as ``ModelMessagesTypeAdapter.dump_python(..., mode="json")``)."""
    history: list[dict[str, Any]] = json.loads("[" + ",".join(_merged(rows)) + "]")
    return history


class HistoryCache:
    """Validated messages by their stored text, bounded by the text's size.

    A session's next turn re-sends mostly the same window, and validating it again is the
    largest part of what history costs a turn. The bound is in characters of stored JSON (the
    validated objects weigh a small multiple of it), so a few huge messages cannot hold on to
    an unbounded amount of memory.
    """

    def __init__(self, max_chars: int = 32 * 1024 * 1024) -> None:
        self.max_chars = max_chars
        self._items: OrderedDict[str, ModelMessage] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def chars(self) -> int:
        return self._chars

    def to_history(self, rows: list[StoredRow]) -> list[ModelMessage]:
        texts = _merged(rows)
        missing = list(dict.fromkeys(t for t in texts if t not in self._items))
        if missing:
            # One validate_json over the stored texts: about twice as fast as parsing then validating.
            validated = ModelMessagesTypeAdapter.validate_json("[" + ",".join(missing) + "]")
            for text, message in zip(missing, validated, strict=True):
                self._items[text] = message
                self._chars += len(text)
        history = []
        for text in texts:
            self._items.move_to_end(text)
            history.append(self._items[text])
        while self._chars > self.max_chars and len(self._items) > len(texts):
            text, _ = self._items.popitem(last=False)
            self._chars -= len(text)
        return history


def window(rows: list[StoredRow], limit: int) -> list[StoredRow]:
    """At most ``limit`` of the newest rows, opening on a user turn; older SYSTEM rows are kept.

    Opening on a USER row (when the window has one) means no tool return is ever sent without
    its call, no merged request is split, and every provider accepts the first message.
    """
    recent = rows[-limit:] if limit > 0 else []
    start = next((i for i, r in enumerate(recent) if r.role is Role.USER), None)
    if start is None:
        start = next((i for i, r in enumerate(recent) if r.role is not Role.TOOL), len(recent))
    chosen = recent[start:]
    first = chosen[0].sequence if chosen else None
    kept_system = [r for r in rows if r.role is Role.SYSTEM and (first is None or r.sequence < first)]
    return kept_system + chosen


# --- OpenAI-style turns recorded with addMessages -------------------------------------------


@dataclass
class IncomingMessage:
    role: Role
    content: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str | None
    tool_name: str | None
    metadata: dict[str, Any]


def drafts_from_openai(messages: list[IncomingMessage], known_calls: dict[str, str]) -> list[RowDraft]:
    """Rows (with their pydantic-ai form) for turns produced elsewhere.

    ``known_calls`` maps earlier tool call ids to tool names so a TOOL message may omit its name.
    Consecutive TOOL messages become one pydantic-ai request, as a model would produce them.
    """
    now = datetime.now(UTC)
    calls = dict(known_calls)
    drafts: list[RowDraft] = []
    for msg in messages:
        if msg.role is Role.ASSISTANT:
            parts: list[Any] = []
            if msg.content:
                parts.append(TextPart(content=msg.content))
            for call in msg.tool_calls:
                calls[call["id"]] = call["name"]
                args = call.get("arguments")
                parts.append(
                    ToolCallPart(
                        tool_name=call["name"],
                        args=args if isinstance(args, str | dict) or args is None else json.dumps(args),
                        tool_call_id=call["id"],
                    )
                )
            if not parts:
                parts.append(TextPart(content=""))
            envelope = dump(ModelResponse(parts=parts, timestamp=now))
            drafts.append(
                RowDraft(
                    role=Role.ASSISTANT,
                    content=msg.content,
                    tool_calls=msg.tool_calls,
                    model_message=envelope,
                    metadata=msg.metadata,
                )
            )
            continue
        grouped = False
        if msg.role is Role.TOOL:
            assert msg.tool_call_id is not None
            name = msg.tool_name or calls.get(msg.tool_call_id) or "tool"
            part: Any = ToolReturnPart(
                tool_name=name, content=msg.content, tool_call_id=msg.tool_call_id, timestamp=now
            )
            grouped = bool(drafts) and drafts[-1].role is Role.TOOL
            draft = RowDraft(
                role=Role.TOOL,
                content=msg.content,
                tool_call_id=msg.tool_call_id,
                tool_name=name,
                model_message={},
                metadata=msg.metadata,
            )
        elif msg.role is Role.SYSTEM:
            part = SystemPromptPart(content=msg.content, timestamp=now)
            draft = RowDraft(role=Role.SYSTEM, content=msg.content, model_message={}, metadata=msg.metadata)
        else:
            part = UserPromptPart(content=msg.content, timestamp=now)
            draft = RowDraft(role=Role.USER, content=msg.content, model_message={}, metadata=msg.metadata)
        draft.model_message = dump(ModelRequest(parts=[part], timestamp=now))
        draft.grouped = grouped
        drafts.append(draft)
    return drafts
