"""Attachments: uploaded files, their bytes in a table of their own, and messages' references.

The bytes are bytea stored EXTERNAL (out of line, uncompressed): images and PDFs are compressed
already, and an uncompressed TOAST value lets ``substring`` read only the chunks it asks for, so
a download streams piece by piece without PostgreSQL or Parley loading the whole file.
"""

from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_operations")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Attachment",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "models.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="attachments",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("filename", fields.CharField(max_length=255)),
                ("media_type", fields.CharField(max_length=100)),
                ("size", fields.IntField()),
                ("sha256", fields.CharField(max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("unreferenced_since", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "attachments",
                "app": "models",
                "indexes": [
                    Index(fields=["user_id"], name="attachments_user"),
                    Index(fields=["unreferenced_since"], name="attachments_unreferenced"),
                ],
                "pk_attr": "id",
                "table_description": "An uploaded file's description; its bytes are in ``attachment_data``.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AttachmentData",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ("data", fields.BinaryField()),
            ],
            options={
                "table": "attachment_data",
                "app": "models",
                "pk_attr": "id",
                "table_description": "The bytes (bytea, stored uncompressed out of line: see migrations/0008_attachments.py).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MessageAttachment",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "message",
                    fields.ForeignKeyField(
                        "models.Message",
                        source_field="message_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="attachment_refs",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "attachment",
                    fields.ForeignKeyField(
                        "models.Attachment",
                        source_field="attachment_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="refs",
                        on_delete=OnDelete.NO_ACTION,
                    ),
                ),
                ("position", fields.IntField()),
            ],
            options={
                "table": "message_attachments",
                "app": "models",
                "unique_together": (("message", "position"),),
                "indexes": [Index(fields=["attachment_id"], name="message_attachments_attachment")],
                "pk_attr": "id",
                "table_description": "A message's reference to an attachment, in the order the message lists them.",
            },
            bases=["Model"],
        ),
        # The bytes go with their attachment (and so with their user).
        ops.RunSQL(
            """ALTER TABLE attachment_data ADD CONSTRAINT attachment_data_attachment_fk FOREIGN KEY (id)
               REFERENCES attachments (id) ON DELETE CASCADE""",
            reverse_sql="ALTER TABLE attachment_data DROP CONSTRAINT attachment_data_attachment_fk",
        ),
        ops.RunSQL(
            "ALTER TABLE attachment_data ALTER COLUMN data SET STORAGE EXTERNAL",
            reverse_sql="ALTER TABLE attachment_data ALTER COLUMN data SET STORAGE EXTENDED",
        ),
    ]
