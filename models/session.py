from __future__ import annotations

import uuid
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from models.agent import Agent
from models.user import User


class Session(Model):
    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    agent: fields.ForeignKeyRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="sessions", on_delete=fields.RESTRICT
    )
    external_id = fields.CharField(max_length=200, null=True)
    title = fields.CharField(max_length=200, null=True)
    state: Any = fields.JSONField(default=dict)
    state_version = fields.IntField(default=0)
    metadata: Any = fields.JSONField(default=dict)
    is_active = fields.BooleanField(default=True)
    # Highest sequence ever given out: sequences are never reused, even after clearing.
    last_sequence = fields.IntField(default=0)
    message_count = fields.IntField(default=0)  # of the active branch
    # Last message of the active branch; for a fork, the message of the source it was forked at.
    head_id = fields.UUIDField(null=True)
    forked_from_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    last_activity_at = fields.DatetimeField(auto_now_add=True)

    user_id: uuid.UUID
    agent_id: uuid.UUID

    class Meta:
        table = "sessions"
        unique_together = (("user", "external_id"),)
        indexes = (Index(fields=("user_id", "last_activity_at", "id"), name="sessions_user_activity"),)
