from __future__ import annotations

import uuid
from typing import Any

import strawberry

from models import Agent, MemoryEntry, Session
from resolvers.context import Context
from schema.enums import MessageRole
from schema.inputs import CreateSessionInput, SessionFilter, UpdateSessionInput
from services import messages, sessions
from services.messages import PageArgs
from services.pagination import Page
from services.transcript import MessageRow

Info = strawberry.Info[Context, None]


async def session(info: Info, id: uuid.UUID | None, external_id: str | None) -> Session | None:
    return await sessions.find_session(info.context.user, id, external_id)


async def session_list(
    info: Info, first: int | None, after: str | None, filter: SessionFilter | None
) -> Page[Session]:
    flt = None
    if filter is not None:
        flt = sessions.SessionFilter(
            agent_name=filter.agent_name,
            is_active=filter.is_active,
            updated_after=filter.updated_after,
            title_contains=filter.title_contains,
        )
    return await sessions.list_sessions(info.context.user, first, after, flt, info.context.runtime.limits)


async def agent_of(info: Info, root: Session) -> Agent:
    return await info.context.loaders.agent.load(root.agent_id)


async def messages_of(
    info: Info,
    root: Session,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    roles: list[MessageRole] | None,
) -> Page[MessageRow]:
    args = _page_args(first, after, last, before, roles)
    args.resolved(info.context.runtime.limits)  # reject bad arguments before batching
    return await info.context.loaders.message_page.load((root.id, args))


def _page_args(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    roles: list[MessageRole] | None,
) -> PageArgs:
    role_values = tuple(sorted({messages.Role(r.value) for r in roles})) if roles else None
    return PageArgs(first=first, after=after, last=last, before=before, roles=role_values)


async def message_list(
    info: Info,
    session_id: uuid.UUID,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Page[MessageRow]:
    return await messages.list_messages(
        info.context.runtime, info.context.user, session_id, _page_args(first, after, last, before, None)
    )


async def memory_of(info: Info, root: Session) -> list[MemoryEntry]:
    return await info.context.loaders.session_memory.load(root.id)


async def history_of(info: Info, root: Session) -> list[dict[str, Any]]:
    return await info.context.loaders.history.load(root.id)


async def create(info: Info, input: CreateSessionInput) -> Session:
    return await sessions.create_session(
        info.context.user,
        sessions.NewSession(
            agent_name=input.agent_name,
            external_id=input.external_id,
            title=input.title,
            state=input.state,
            metadata=input.metadata,
        ),
        info.context.runtime.limits,
    )


async def get_or_create(info: Info, external_id: str, agent_name: str | None) -> Session:
    return await sessions.get_or_create_session(info.context.user, external_id, agent_name)


async def update(info: Info, id: uuid.UUID, input: UpdateSessionInput) -> Session:
    changes = sessions.SessionChanges(title=input.title, metadata=input.metadata, is_active=input.is_active)
    return await sessions.update_session(info.context.user, id, changes, info.context.runtime.limits)


async def update_state(
    info: Info, id: uuid.UUID, set: Any, unset: list[str] | None, expected_version: int | None
) -> Session:
    return await sessions.update_state(
        info.context.user, id, set, unset, expected_version, info.context.runtime.limits
    )


async def clear_history(info: Info, id: uuid.UUID) -> Session:
    await messages.clear_history(info.context.user, id)
    return await sessions.require_session(info.context.user, id)


async def delete(info: Info, id: uuid.UUID) -> bool:
    return await sessions.delete_session(info.context.runtime, info.context.user, id)
