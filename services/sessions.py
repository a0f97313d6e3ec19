"""Sessions: one user's conversations with an agent, with state and metadata."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models import Agent, Run, RunStatus, Session, User
from services import attachments, notices, pagination, runs
from services.agents import agent_for_session
from services.database import acquire
from services.errors import BadInput, Conflict, NotFound, RunInProgress
from services.limits import Limits, short_text
from services.owned import require_session
from services.pagination import Page

if TYPE_CHECKING:
    from services.runtime import Runtime

_CURSOR = "s"


@dataclass
class SessionFilter:
    agent_name: str | None = None
    is_active: bool | None = None
    updated_after: datetime | None = None
    title_contains: str | None = None


@dataclass
class NewSession:
    agent_name: str | None = None
    external_id: str | None = None
    title: str | None = None
    state: Any = None
    metadata: Any = None


@dataclass
class SessionChanges:
    title: str | None = None
    metadata: Any = None
    is_active: bool | None = None


async def find_session(
    user: User, session_id: uuid.UUID | None = None, external_id: str | None = None
) -> Session | None:
    """The caller's session by id or externalId; someone else's is simply not found."""
    if (session_id is None) == (external_id is None):
        raise BadInput("give exactly one of id or externalId")
    if session_id is not None:
        return await Session.get_or_none(id=session_id, user_id=user.id)
    return await Session.get_or_none(external_id=external_id, user_id=user.id)


async def list_sessions(
    user: User, first: int | None, after: str | None, flt: SessionFilter | None, limits: Limits
) -> Page[Session]:
    size = limits.page_size(first)
    query = Session.filter(user_id=user.id)
    if flt is not None:
        if flt.agent_name is not None:
            query = query.filter(agent__name=flt.agent_name)
        if flt.is_active is not None:
            query = query.filter(is_active=flt.is_active)
        if flt.updated_after is not None:
            query = query.filter(updated_at__gt=flt.updated_after)
        if flt.title_contains:
            query = query.filter(title__icontains=flt.title_contains)
    total = await query.count()
    page_query = query
    if after is not None:
        ts_raw, id_raw = pagination.decode(after, _CURSOR, 2)
        try:
            ts, sid = datetime.fromisoformat(ts_raw), uuid.UUID(id_raw)
        except ValueError as exc:
            raise BadInput("invalid cursor") from exc
        page_query = page_query.filter(Q(last_activity_at__lt=ts) | Q(last_activity_at=ts, id__lt=sid))
    rows = await page_query.order_by("-last_activity_at", "-id").limit(size + 1)
    items = rows[:size]
    return Page(
        items=items,
        cursors=[pagination.encode(_CURSOR, s.last_activity_at.isoformat(), s.id) for s in items],
        has_next=len(rows) > size,
        has_previous=after is not None,
        total_count=total,
    )


async def create_session(user: User, new: NewSession, limits: Limits) -> Session:
    agent = await agent_for_session(new.agent_name)
    fields = _new_fields(new, limits)
    try:
        return await Session.create(user_id=user.id, agent_id=agent.id, **fields)
    except IntegrityError as exc:
        raise Conflict(f"a session with externalId {new.external_id!r} already exists") from exc


def _new_fields(new: NewSession, limits: Limits) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "state": limits.json_value(new.state or {}, "state", require_object=True),
        "metadata": limits.json_value(new.metadata or {}, "metadata", require_object=True),
    }
    if new.external_id is not None:
        fields["external_id"] = _external_id(new.external_id)
    if new.title is not None:
        fields["title"] = short_text(new.title, "title")
    return fields


def _external_id(value: str) -> str:
    if not value.strip():
        raise BadInput("externalId must not be empty")
    return short_text(value, "externalId")


async def get_or_create_session(user: User, external_id: str, agent_name: str | None) -> Session:
    """Idempotent per (user, externalId), also when called concurrently."""
    external_id = _external_id(external_id)
    existing = await Session.get_or_none(user_id=user.id, external_id=external_id)
    if existing is not None:
        return existing
    agent: Agent = await agent_for_session(agent_name)
    try:
        return await Session.create(user_id=user.id, agent_id=agent.id, external_id=external_id)
    except IntegrityError:
        # A concurrent call created it between our read and our insert: return that one.
        return await Session.get(user_id=user.id, external_id=external_id)


async def update_session(
    user: User, session_id: uuid.UUID, changes: SessionChanges, limits: Limits
) -> Session:
    session = await require_session(user, session_id)
    if changes.title is not None:
        session.title = short_text(changes.title, "title")
    if changes.metadata is not None:
        session.metadata = limits.json_value(changes.metadata, "metadata", require_object=True)
    if changes.is_active is not None:
        session.is_active = changes.is_active
    # Only these columns: a full save would roll back concurrent changes to the state and
    # to the message counters (last_sequence), and a reused sequence breaks the next append.
    await session.save(update_fields=["title", "metadata", "is_active", "updated_at"])
    return session


async def update_state(
    user: User,
    session_id: uuid.UUID,
    set_: Any,
    unset: list[str] | None,
    expected_version: int | None,
    limits: Limits,
) -> Session:
    """Top-level merge of ``set_``, removal of ``unset``; one version bump per call."""
    if set_ is not None and not isinstance(set_, dict):
        raise BadInput("set must be a JSON object")
    async with in_transaction():
        session = await Session.filter(id=session_id, user_id=user.id).select_for_update().first()
        if session is None:
            raise NotFound.of("session", session_id)
        if expected_version is not None and expected_version != session.state_version:
            raise Conflict(
                f"stateVersion is {session.state_version}, not {expected_version}: "
                "reload the session and retry"
            )
        state = dict(session.state or {})
        state.update(set_ or {})
        for key in unset or []:
            state.pop(key, None)
        session.state = limits.json_value(state, "state")
        session.state_version += 1
        await session.save(update_fields=["state", "state_version", "updated_at"])
    return session


async def delete_session(rt: Runtime, user: User, session_id: uuid.UUID) -> bool:
    """Delete a session with its messages, runs and memory, cancelling a running reply first.
    Attachments only its messages refer to go too (a fork's, or another session's, stay).

    The row lock makes the check and the delete one step: a turn that starts meanwhile is
    cancelled in the next round instead of losing its rows under its feet.
    """
    session = await require_session(user, session_id)
    for _ in range(5):
        active = await Run.get_or_none(session_id=session.id, status=RunStatus.RUNNING)
        if active is not None:
            await runs.cancel_run(rt, user, active.id)
        async with acquire() as conn, conn.transaction():
            busy = await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM runs WHERE session_id = s.id AND status = 'running')
                   FROM sessions s WHERE s.id = $1 FOR UPDATE OF s""",
                session.id,
            )
            if busy is None:
                return False  # deleted meanwhile
            if busy:
                continue
            attached = await attachments.of_sessions(conn, [session.id])
            await conn.execute("DELETE FROM sessions WHERE id = $1", session.id)
            await attachments.drop_unreferenced(conn, attached)
            await notices.sessions_deleted(conn, [session.id])  # its streams end on every process
            return True
    raise RunInProgress("the session keeps starting new replies; retry")
