from __future__ import annotations

import uuid

import strawberry


@strawberry.type
class User:
    id: uuid.UUID
    name: str
    is_admin: bool
