from uuid import uuid4

from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from models.memory import MemoryScope
from models.message import Role
from models.run import RunStatus


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Agent",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ("name", fields.CharField(unique=True, max_length=100)),
                ("model", fields.CharField(max_length=200)),
                ("instructions", fields.TextField(default="", unique=False)),
                ("memory_enabled", fields.BooleanField(default=True)),
                ("history_limit", fields.IntField(default=100)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={"table": "agents", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="User",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ("name", fields.CharField(unique=True, max_length=200)),
                ("is_admin", fields.BooleanField(default=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "users", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ApiToken",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="tokens",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("token_hash", fields.CharField(unique=True, max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "api_tokens",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Only the SHA-256 of a token is kept; the token itself is shown once.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Session",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="sessions",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "agent",
                    fields.ForeignKeyField(
                        "models.Agent",
                        source_field="agent_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="sessions",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("external_id", fields.CharField(null=True, max_length=200)),
                ("title", fields.CharField(null=True, max_length=200)),
                ("state", fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ("state_version", fields.IntField(default=0)),
                ("metadata", fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ("is_active", fields.BooleanField(default=True)),
                ("last_sequence", fields.IntField(default=0)),
                ("message_count", fields.IntField(default=0)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ("last_activity_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "sessions",
                "app": "models",
                "unique_together": (("user", "external_id"),),
                "indexes": [
                    Index(fields=["user_id", "last_activity_at", "id"], name="sessions_user_activity")
                ],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MemoryEntry",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="memory",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "session",
                    fields.ForeignKeyField(
                        "models.Session",
                        source_field="session_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="memory",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "scope",
                    fields.CharEnumField(
                        description="USER: user\nSESSION: session", enum_type=MemoryScope, max_length=16
                    ),
                ),
                ("key", fields.CharField(max_length=200)),
                ("value", fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "memory_entries",
                "app": "models",
                "pk_attr": "id",
                "table_description": "Keys are unique per scope: (user, key) for USER, (session, key) for SESSION.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Message",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "session",
                    fields.ForeignKeyField(
                        "models.Session",
                        source_field="session_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("sequence", fields.IntField()),
                (
                    "role",
                    fields.CharEnumField(
                        description="USER: user\nASSISTANT: assistant\nSYSTEM: system\nTOOL: tool",
                        enum_type=Role,
                        max_length=16,
                    ),
                ),
                ("content", fields.TextField(default="", unique=False)),
                ("tool_calls", fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ("tool_call_id", fields.CharField(null=True, max_length=200)),
                ("tool_name", fields.CharField(null=True, max_length=200)),
                ("run_id", fields.UUIDField(null=True)),
                ("model", fields.CharField(null=True, max_length=200)),
                ("requests", fields.IntField(null=True)),
                ("input_tokens", fields.IntField(null=True)),
                ("output_tokens", fields.IntField(null=True)),
                ("cost", fields.FloatField(null=True)),
                ("processing_time_ms", fields.IntField(null=True)),
                ("metadata", fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ("model_message", fields.TextField(unique=False)),
                ("part_group", fields.IntField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "messages",
                "app": "models",
                "unique_together": (("session", "sequence"),),
                "pk_attr": "id",
                "table_description": "One row per conversation message.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Run",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "session",
                    fields.ForeignKeyField(
                        "models.Session",
                        source_field="session_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="runs",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "status",
                    fields.CharEnumField(
                        default=RunStatus.RUNNING,
                        description="RUNNING: running\nCOMPLETED: completed\nFAILED: failed\nCANCELLED: cancelled",
                        enum_type=RunStatus,
                        max_length=16,
                    ),
                ),
                ("model", fields.CharField(max_length=200)),
                ("idempotency_key", fields.CharField(null=True, max_length=200)),
                ("user_message_id", fields.UUIDField(null=True)),
                ("reply_id", fields.UUIDField(null=True)),
                ("owner_key", fields.BigIntField()),
                ("started_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("finished_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("requests", fields.IntField(null=True)),
                ("input_tokens", fields.IntField(null=True)),
                ("output_tokens", fields.IntField(null=True)),
                ("cost", fields.FloatField(null=True)),
                ("error_code", fields.CharField(null=True, max_length=64)),
                ("error_message", fields.TextField(null=True, unique=False)),
                ("partial_text", fields.TextField(default="", unique=False)),
                ("partial_index", fields.IntField(default=0)),
            ],
            options={
                "table": "runs",
                "app": "models",
                "unique_together": (("session", "idempotency_key"),),
                "indexes": [Index(fields=["session_id", "started_at"], name="runs_session_started")],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]
