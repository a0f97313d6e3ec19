from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.enums import MemoryScope


@strawberry.type
class MemoryEntry:
    key: str
    value: JSON
    scope: MemoryScope
    session_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
