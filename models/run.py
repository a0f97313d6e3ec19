from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from models.session import Session


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"  # paused for a person: owned by no process
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Run(Model):
    id = fields.UUIDField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="runs", on_delete=fields.CASCADE
    )
    status = fields.CharEnumField(RunStatus, max_length=16, default=RunStatus.RUNNING)
    model = fields.CharField(max_length=200)
    idempotency_key = fields.CharField(max_length=200, null=True)
    user_message_id = fields.UUIDField(null=True)
    reply_id = fields.UUIDField(null=True)
    # Advisory-lock key held by the owning process for its whole life: a RUNNING run whose
    # owner key is not held in pg_locks belongs to a dead process.
    owner_key = fields.BigIntField()
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)
    requests = fields.IntField(null=True)
    input_tokens = fields.IntField(null=True)
    output_tokens = fields.IntField(null=True)
    cost = fields.FloatField(null=True)
    error_code = fields.CharField(max_length=64, null=True)
    error_message = fields.TextField(null=True)
    # Text streamed so far and the number of model deltas it holds, flushed while running so
    # that a watcher joining on another process gets a snapshot.
    partial_text = fields.TextField(default="")
    partial_index = fields.IntField(default=0)
    # While WAITING_APPROVAL: [{"tool_call_id", "tool_name", "arguments"}] awaiting a decision.
    pending_approvals: list[dict[str, Any]] = fields.JSONField(default=list, db_default="[]")

    session_id: uuid.UUID

    class Meta:
        table = "runs"
        unique_together = (("session", "idempotency_key"),)
        indexes = (Index(fields=("session_id", "started_at"), name="runs_session_started"),)
