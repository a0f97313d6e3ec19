"""Opaque keyset cursors and the page shape every connection shares."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.errors import BadInput

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool
    has_previous: bool
    total_count: int = 0


def encode(kind: str, *values: object) -> str:
    raw = "|".join([kind, *(str(v) for v in values)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, kind: str, arity: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadInput("invalid cursor") from exc
    if len(parts) != arity + 1 or parts[0] != kind:
        raise BadInput("invalid cursor")
    return parts[1:]
