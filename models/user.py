from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class UserKind(StrEnum):
    """Where a user comes from. Names are unique per kind: a JWT can never name a token user."""

    TOKEN = "token"  # made by `parley user create`; authenticates with API tokens
    JWT = "jwt"  # made on first sight of a JWT's `sub`


class User(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    kind = fields.CharEnumField(UserKind, max_length=16, default=UserKind.TOKEN)
    is_admin = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    tokens: fields.ReverseRelation[ApiToken]

    class Meta:
        table = "users"
        unique_together = (("kind", "name"),)


class ApiToken(Model):
    """Only the SHA-256 of a token is kept; the token itself is shown once."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="tokens", on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_tokens"


class WsConnection(Model):
    """An open WebSocket of a user, held by the process whose advisory lock is ``owner_key``."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="connections", on_delete=fields.CASCADE
    )
    owner_key = fields.BigIntField()
    opened_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ws_connections"
