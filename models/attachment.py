from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from models.message import Message
from models.user import User


class Attachment(Model):
    """An uploaded file's description; its bytes are in ``attachment_data``.

    A table of their own: nothing listing attachments (or messages) can load them by accident.
    """

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="attachments", on_delete=fields.CASCADE
    )
    filename = fields.CharField(max_length=255)
    media_type = fields.CharField(max_length=100)
    size = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Since when no message refers to it (null while one does): retention deletes it a day later.
    unreferenced_since = fields.DatetimeField(null=True)

    user_id: uuid.UUID

    class Meta:
        table = "attachments"
        indexes = (
            Index(fields=("user_id",), name="attachments_user"),
            Index(fields=("unreferenced_since",), name="attachments_unreferenced"),
        )


class AttachmentData(Model):
    """The bytes (bytea, stored uncompressed out of line: see migrations/0008_attachments.py).

    ``id`` is the attachment's id (a foreign key with ON DELETE CASCADE, made in the migration).
    """

    id = fields.UUIDField(primary_key=True)
    data = fields.BinaryField()

    class Meta:
        table = "attachment_data"


class MessageAttachment(Model):
    """A message's reference to an attachment, in the order the message lists them."""

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="attachment_refs", on_delete=fields.CASCADE
    )
    # NO ACTION: a referenced attachment cannot go; whoever deletes attachments drops the
    # references first (deleting a user deletes their sessions before the user row).
    attachment: fields.ForeignKeyRelation[Attachment] = fields.ForeignKeyField(
        "models.Attachment", related_name="refs", on_delete=fields.NO_ACTION
    )
    position = fields.IntField()

    message_id: uuid.UUID
    attachment_id: uuid.UUID

    class Meta:
        table = "message_attachments"
        unique_together = (("message", "position"),)
        indexes = (Index(fields=("attachment_id",), name="message_attachments_attachment"),)
