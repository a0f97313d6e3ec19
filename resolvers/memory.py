from __future__ import annotations

import uuid
from typing import Any

from models import MemoryScope as Scope
from resolvers import mapping
from resolvers.context import Context
from schema.enums import MemoryScope
from schema.memory import MemoryEntry
from services import memory


def _scope(scope: MemoryScope) -> Scope:
    return Scope(scope.value)


async def entries(ctx: Context, scope: MemoryScope, session_id: uuid.UUID | None) -> list[MemoryEntry]:
    return [mapping.memory_entry(e) for e in await memory.list_memory(ctx.user, _scope(scope), session_id)]


async def save(
    ctx: Context, key: str, value: Any, scope: MemoryScope, session_id: uuid.UUID | None
) -> MemoryEntry:
    rt = ctx.runtime
    bounds = memory.MemoryBounds.of(rt.settings)
    saved = await memory.save_memory(ctx.user, key, value, _scope(scope), session_id, rt.limits, bounds)
    return mapping.memory_entry(saved)


async def delete(ctx: Context, key: str, scope: MemoryScope, session_id: uuid.UUID | None) -> bool:
    return await memory.delete_memory(ctx.user, key, _scope(scope), session_id)


async def clear(ctx: Context, scope: MemoryScope | None, session_id: uuid.UUID | None) -> int:
    return await memory.clear_memory(ctx.user, _scope(scope) if scope else None, session_id)
