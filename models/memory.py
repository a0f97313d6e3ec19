from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.session import Session
from models.user import User


class MemoryScope(StrEnum):
    USER = "user"
    SESSION = "session"


class MemoryEntry(Model):
    """Keys are unique per scope: (user, key) for USER, (session, key) for SESSION.

    Both are partial unique indexes created in the migration.
    """

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="memory", on_delete=fields.CASCADE
    )
    session: fields.ForeignKeyNullableRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="memory", on_delete=fields.CASCADE, null=True
    )
    scope = fields.CharEnumField(MemoryScope, max_length=16)
    key = fields.CharField(max_length=200)
    value: Any = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    user_id: uuid.UUID
    session_id: uuid.UUID

    class Meta:
        table = "memory_entries"
