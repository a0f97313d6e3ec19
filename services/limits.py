"""Input limits shared by every service, with their sizes from the settings.

Every text that reaches PostgreSQL must be storable: no NUL character and valid Unicode (a
JSON string may carry a lone surrogate, which no UTF-8 column can hold). Checking here gives
clients Parley's words instead of the driver's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.errors import BadInput
from services.settings import Settings

MAX_JSON_DEPTH = 32
SHORT_TEXT = 200


def storable(text: str, what: str) -> str:
    """Text PostgreSQL can store: no NUL character, valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        raise BadInput(f"{what} must not contain NUL characters")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise BadInput(f"{what} is not valid Unicode text (it holds a lone surrogate)") from exc
    return text


def short_text(text: str, what: str, limit: int = SHORT_TEXT) -> str:
    storable(text, what)
    if len(text) > limit:
        raise BadInput(f"{what} has {len(text)} characters; the limit is {limit}")
    return text


def _check_tree(value: Any, what: str) -> None:
    """Depth and strings of a JSON value, without recursion (a deep value cannot blow the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise BadInput(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    if isinstance(key, str):
                        storable(key, what)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            storable(node, what)


@dataclass(frozen=True)
class Limits:
    """The sizes a deployment allows (PARLEY_MAX_*)."""

    max_json_bytes: int
    max_message_chars: int
    max_page_size: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_state_bytes, settings.max_message_chars, settings.max_page_size)

    def json_value(self, value: Any, what: str, *, require_object: bool = False) -> Any:
        """Reject JSON values that are too large (serialized), too deep or of the wrong shape."""
        if require_object and not isinstance(value, dict):
            raise BadInput(f"{what} must be a JSON object")
        _check_tree(value, what)
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{what} is not valid JSON") from exc
        size = len(text.encode())
        if size > self.max_json_bytes:
            raise BadInput(
                f"{what} is {size} bytes; the limit is {self.max_json_bytes} (PARLEY_MAX_STATE_BYTES)"
            )
        return value

    def content(self, text: str, what: str = "content", *, allow_empty: bool = False) -> str:
        storable(text, what)
        if not allow_empty and not text.strip():
            raise BadInput(f"{what} must not be empty")
        if len(text) > self.max_message_chars:
            raise BadInput(
                f"{what} has {len(text)} characters; the limit is {self.max_message_chars} (PARLEY_MAX_MESSAGE_CHARS)"
            )
        return text

    def page_size(self, value: int | None, default: int = 20) -> int:
        if value is None:
            return default
        if value < 0 or value > self.max_page_size:
            raise BadInput(f"page size must be between 0 and {self.max_page_size}")
        return value
