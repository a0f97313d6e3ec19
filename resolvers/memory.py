from __future__ import annotations

import uuid
from typing import Any

import strawberry

from models import MemoryEntry
from models import MemoryScope as Scope
from resolvers.context import Context
from schema.enums import MemoryScope
from services import memory

Info = strawberry.Info[Context, None]


def _scope(scope: MemoryScope) -> Scope:
    return Scope(scope.value)


async def entries(info: Info, scope: MemoryScope, session_id: uuid.UUID | None) -> list[MemoryEntry]:
    return await memory.list_memory(info.context.user, _scope(scope), session_id)


async def save(
    info: Info, key: str, value: Any, scope: MemoryScope, session_id: uuid.UUID | None
) -> MemoryEntry:
    rt = info.context.runtime
    bounds = memory.MemoryBounds.of(rt.settings)
    return await memory.save_memory(
        info.context.user, key, value, _scope(scope), session_id, rt.limits, bounds
    )


async def delete(info: Info, key: str, scope: MemoryScope, session_id: uuid.UUID | None) -> bool:
    return await memory.delete_memory(info.context.user, key, _scope(scope), session_id)


async def clear(info: Info, scope: MemoryScope | None, session_id: uuid.UUID | None) -> int:
    return await memory.clear_memory(info.context.user, _scope(scope) if scope else None, session_id)
