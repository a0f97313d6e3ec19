"""Users get a kind (token or JWT) with names unique per kind; open WebSockets are counted."""

from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint

from models.user import UserKind


class Migration(migrations.Migration):
    dependencies = [("models", "0004_history_indexes")]

    initial = False

    operations = [
        ops.CreateModel(
            name="WsConnection",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="connections",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("owner_key", fields.BigIntField()),
                ("opened_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "ws_connections",
                "app": "models",
                "pk_attr": "id",
                "table_description": "An open WebSocket of a user, held by the process whose advisory lock is ``owner_key``.",
            },
            bases=["Model"],
        ),
        ops.AlterField(
            model_name="User",
            name="name",
            field=fields.CharField(max_length=200),
        ),
        ops.AddField(
            model_name="User",
            name="kind",
            field=fields.CharEnumField(
                default=UserKind.TOKEN,
                description="TOKEN: token\nJWT: jwt",
                enum_type=UserKind,
                max_length=16,
            ),
        ),
        # Before namespaces, users made from JWTs were the ones without API tokens (tokens were
        # never revoked then): they keep their sessions under their JWT subject.
        ops.RunSQL(
            "UPDATE users SET kind = 'jwt' WHERE NOT EXISTS (SELECT 1 FROM api_tokens t WHERE t.user_id = users.id)",
            reverse_sql="SELECT 1",
        ),
        ops.AddConstraint(
            model_name="User",
            constraint=UniqueConstraint(fields=("kind", "name"), name=None),
        ),
    ]
