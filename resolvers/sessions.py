from __future__ import annotations

import uuid
from typing import Any

from resolvers import mapping
from resolvers.context import Context
from schema.inputs import CreateSessionInput, SessionFilter, UpdateSessionInput
from schema.session import Session, SessionConnection
from services import branches, messages, sessions
from services.memory import MemoryBounds
from services.owned import require_session


async def session(ctx: Context, id: uuid.UUID | None, external_id: str | None) -> Session | None:
    found = await sessions.find_session(ctx.user, id, external_id)
    return mapping.session(found) if found is not None else None


async def session_list(
    ctx: Context, first: int | None, after: str | None, filter: SessionFilter | None
) -> SessionConnection:
    flt = None
    if filter is not None:
        flt = sessions.SessionFilter(
            agent_name=filter.agent_name,
            is_active=filter.is_active,
            updated_after=filter.updated_after,
            title_contains=filter.title_contains,
        )
    page = await sessions.list_sessions(ctx.user, first, after, flt, ctx.runtime.limits)
    return mapping.session_page(page)


async def create(ctx: Context, input: CreateSessionInput) -> Session:
    new = sessions.NewSession(
        agent_name=input.agent_name,
        external_id=input.external_id,
        title=input.title,
        state=input.state,
        metadata=input.metadata,
    )
    return mapping.session(await sessions.create_session(ctx.user, new, ctx.runtime.limits))


async def get_or_create(ctx: Context, external_id: str, agent_name: str | None) -> Session:
    return mapping.session(await sessions.get_or_create_session(ctx.user, external_id, agent_name))


async def update(ctx: Context, id: uuid.UUID, input: UpdateSessionInput) -> Session:
    changes = sessions.SessionChanges(title=input.title, metadata=input.metadata, is_active=input.is_active)
    return mapping.session(await sessions.update_session(ctx.user, id, changes, ctx.runtime.limits))


async def update_state(
    ctx: Context, id: uuid.UUID, set: Any, unset: list[str] | None, expected_version: int | None
) -> Session:
    updated = await sessions.update_state(ctx.user, id, set, unset, expected_version, ctx.runtime.limits)
    return mapping.session(updated)


async def clear_history(ctx: Context, id: uuid.UUID) -> Session:
    await messages.clear_history(ctx.user, id)
    return mapping.session(await require_session(ctx.user, id))


async def delete(ctx: Context, id: uuid.UUID) -> bool:
    return await sessions.delete_session(ctx.runtime, ctx.user, id)


async def switch_branch(ctx: Context, message_id: uuid.UUID) -> Session:
    return mapping.session(await branches.switch_branch(ctx.user, message_id))


async def fork(ctx: Context, message_id: uuid.UUID, title: str | None) -> Session:
    bounds = MemoryBounds.of(ctx.settings)
    return mapping.session(await branches.fork_session(ctx.user, message_id, title, bounds))
