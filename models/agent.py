from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Agent(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    model = fields.CharField(max_length=200)
    instructions = fields.TextField(default="")
    memory_enabled = fields.BooleanField(default=True)
    history_limit = fields.IntField(default=100)
    # [{"url", "headers", "allowed_tools", "tool_prefix"}]: headers are secrets, never returned.
    mcp_servers: list[dict[str, Any]] = fields.JSONField(default=list, db_default="[]")
    approval_required: list[str] = fields.JSONField(
        default=list, db_default="[]"
    )  # tool names; "*": every tool
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "agents"
