from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.session import Session


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class Message(Model):
    """One row per conversation message.

    ``model_message`` is the exact pydantic-ai ``ModelMessage`` JSON (text, not jsonb, so that
    history round-trips byte for byte). A pydantic-ai request carrying several tool returns
    is stored as several TOOL rows sharing ``part_group``; history merges them back.
    """

    id = fields.UUIDField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="messages", on_delete=fields.CASCADE
    )
    sequence = fields.IntField()
    role = fields.CharEnumField(Role, max_length=16)
    content = fields.TextField(default="")
    tool_calls: Any = fields.JSONField(default=list)
    tool_call_id = fields.CharField(max_length=200, null=True)
    tool_name = fields.CharField(max_length=200, null=True)
    run_id = fields.UUIDField(null=True)
    model = fields.CharField(max_length=200, null=True)
    requests = fields.IntField(null=True)
    input_tokens = fields.IntField(null=True)
    output_tokens = fields.IntField(null=True)
    cost = fields.FloatField(null=True)
    processing_time_ms = fields.IntField(null=True)
    metadata: Any = fields.JSONField(default=dict)
    model_message = fields.TextField()
    part_group = fields.IntField(null=True)
    # The message this one follows (null for the first); siblings share it. ``active``: on the
    # path from the first message to the session's head (see migrations/0007_branches.py).
    parent_id = fields.UUIDField(null=True)
    active = fields.BooleanField(default=True, db_default=True)  # raw INSERTs rely on the default
    created_at = fields.DatetimeField(auto_now_add=True)

    session_id: uuid.UUID

    class Meta:
        table = "messages"
        unique_together = (("session", "sequence"),)
