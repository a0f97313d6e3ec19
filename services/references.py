"""Attachments inside pydantic-ai messages: what the model is sent, and what is stored instead.

A user prompt with attachments is a list: the user's text (when there is any), then one item per
attachment in the message's order. An image or a PDF is a ``BinaryContent`` whose identifier is
the attachment's id; a text file is a ``TextContent`` (the file's text under a line naming it)
whose metadata is ``{"parley_attachment": id}``. Stored, the same JSON holds these items with the
bulk left out (``"data": ""``, ``"content": ""``): a reference. Building history (for a run, for
``Session.history``) puts the bytes back from the attachments table, so the model is sent, and a
client reads, exactly what the first run sent, while the stored rows stay as small as the words.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    TextContent,
    UserContent,
    UserPromptPart,
)

from services import file_types
from services.attachments import AttachmentRow, Blob

MARK = "parley_attachment"


def _item(row: AttachmentRow, data: bytes | None) -> UserContent:
    """The prompt item of an attachment; without ``data``, its stored (reference) form."""
    if row.is_binary:
        return BinaryContent.narrow_type(
            BinaryContent(data=data or b"", media_type=row.media_type, identifier=str(row.id))
        )
    text = _framed(row, data) if data is not None else ""
    return TextContent(text, metadata={MARK: str(row.id)})


def _framed(row: AttachmentRow, data: bytes) -> str:
    name = html.escape(row.filename, quote=True)
    return f'<file name="{name}" type="{row.media_type}">\n{file_types.text_of(data)}\n</file>'


def prompt(content: str, blobs: list[Blob]) -> str | list[UserContent]:
    """What a run sends as the user's prompt (a plain string when nothing is attached)."""
    if not blobs:
        return content
    items: list[UserContent] = [content] if content else []
    items.extend(_item(b.row, b.data) for b in blobs)
    return items


def stored_prompt(content: str, rows: list[AttachmentRow]) -> str | list[UserContent]:
    """The prompt as a message row stores it: references instead of bytes."""
    if not rows:
        return content
    items: list[UserContent] = [content] if content else []
    items.extend(_item(row, None) for row in rows)
    return items


# --- the stored JSON ------------------------------------------------------------------------


def _prompt_items(message: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    if message.get("kind") != "request":
        return
    for part in message.get("parts") or ():
        content = part.get("content") if part.get("part_kind") == "user-prompt" else None
        if isinstance(content, list):
            yield from (item for item in content if isinstance(item, dict))


def _attachment_id(raw: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _ref_of(item: Mapping[str, Any]) -> uuid.UUID | None:
    if item.get("kind") == "binary":
        return _attachment_id(item.get("identifier"))
    if item.get("kind") == "text-content" and isinstance(item.get("metadata"), dict):
        return _attachment_id(item["metadata"].get(MARK))
    return None


def strip(message: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a message as pydantic-ai dumped it, with every attachment's bulk left out."""
    for item in _prompt_items(message):
        if _ref_of(item) is not None:
            item["data" if item["kind"] == "binary" else "content"] = ""
    return message


def ids_in_json(messages: Iterable[Mapping[str, Any]]) -> set[uuid.UUID]:
    return {ref for m in messages for item in _prompt_items(m) if (ref := _ref_of(item)) is not None}


def might_refer(stored_text: str) -> bool:
    """A cheap test on a row's stored JSON before parsing it."""
    return '"kind":"binary"' in stored_text or MARK in stored_text


# --- filling references back in -------------------------------------------------------------


def _ref_of_item(item: object) -> uuid.UUID | None:
    if isinstance(item, BinaryContent):
        return _attachment_id(item.identifier)
    if isinstance(item, TextContent) and isinstance(item.metadata, dict):
        return _attachment_id(item.metadata.get(MARK))
    return None


def ids_in(messages: Iterable[ModelMessage]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                    found.update(ref for item in part.content if (ref := _ref_of_item(item)) is not None)
    return found


def _filled_item(item: UserContent, blobs: Mapping[uuid.UUID, Blob]) -> UserContent:
    ref = _ref_of_item(item)
    if ref is None:
        return item
    blob = blobs.get(ref)
    if blob is None:  # never while a message refers to it; said plainly rather than sent empty
        return TextContent("(an attached file that no longer exists)", metadata={MARK: str(ref)})
    if isinstance(item, BinaryContent):
        return _item(blob.row, blob.data)
    return TextContent(
        _framed(blob.row, blob.data), metadata=item.metadata if isinstance(item, TextContent) else None
    )


def fill(messages: list[ModelMessage], blobs: Mapping[uuid.UUID, Blob]) -> list[ModelMessage]:
    """New messages with the attachments' bytes in place of their references (the given
    messages may be shared, e.g. cached: they are left as they are)."""
    out: list[ModelMessage] = []
    for message in messages:
        if isinstance(message, ModelRequest) and any(
            isinstance(p, UserPromptPart) and not isinstance(p.content, str) for p in message.parts
        ):
            parts = [
                replace(p, content=[_filled_item(i, blobs) for i in p.content])
                if isinstance(p, UserPromptPart) and not isinstance(p.content, str)
                else p
                for p in message.parts
            ]
            message = replace(message, parts=parts)
        out.append(message)
    return out
