"""Input limits shared by every service (sizes from settings)."""

from __future__ import annotations

import json
from typing import Any

from services.errors import BadInput
from services.settings import get_settings


def json_value(value: Any, what: str, *, require_object: bool = False) -> Any:
    """Reject JSON values that are too large (serialized) or of the wrong shape."""
    if require_object and not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object")
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadInput(f"{what} is not valid JSON") from exc
    limit = get_settings().max_state_bytes
    if size > limit:
        raise BadInput(f"{what} is {size} bytes; the limit is {limit} (PARLEY_MAX_STATE_BYTES)")
    return value


def _no_nul(text: str, what: str) -> None:
    if "\x00" in text:  # PostgreSQL text cannot hold NUL characters
        raise BadInput(f"{what} must not contain NUL characters")


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
