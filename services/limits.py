"""Input limits shared by every service (sizes from settings)."""

from __future__ import annotations

import json
from typing import Any

from services.errors import BadInput
from services.settings import get_settings

MAX_JSON_DEPTH = 32


def json_value(value: Any, what: str, *, require_object: bool = False) -> Any:
    """Reject JSON values that are too large (serialized), too deep or of the wrong shape.

    Every string (keys included) must be storable: no NUL character (PostgreSQL's jsonb refuses
    ``\\u0000``) and no lone surrogate (not UTF-8).
    """
    if require_object and not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object")
    _check_tree(value, what)
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{what} is not valid JSON") from exc
    limit = get_settings().max_state_bytes
    if size > limit:
        raise BadInput(f"{what} is {size} bytes; the limit is {limit} (PARLEY_MAX_STATE_BYTES)")
    return value


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
                        _storable(key, what)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _storable(node, what)


def _storable(text: str, what: str) -> None:
    """Text PostgreSQL can store: no NUL character, valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        raise BadInput(f"{what} must not contain NUL characters")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise BadInput(f"{what} is not valid Unicode text (it holds a lone surrogate)") from exc


def _no_nul(text: str, what: str) -> None:
    _storable(text, what)


def content(text: str, what: str = "content", *, allow_empty: bool = False) -> str:
    _no_nul(text, what)
    if not allow_empty and not text.strip():
        raise BadInput(f"{what} must not be empty")
    limit = get_settings().max_message_chars
    if len(text) > limit:
        raise BadInput(f"{what} has {len(text)} characters; the limit is {limit} (PARLEY_MAX_MESSAGE_CHARS)")
    return text


def short_text(text: str, what: str, limit: int = 200) -> str:
    _no_nul(text, what)
    if len(text) > limit:
        raise BadInput(f"{what} has {len(text)} characters; the limit is {limit}")
    return text


def page_size(value: int | None, default: int = 20) -> int:
    if value is None:
        return default
    limit = get_settings().max_page_size
    if value < 0 or value > limit:
        raise BadInput(f"page size must be between 0 and {limit}")
    return value
