from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from models import Session as SessionRow
from resolvers import runs as resolve_runs
from resolvers import sessions as resolve
from resolvers import stats as resolve_stats
from schema.agent import Agent
from schema.enums import MessageRole
from schema.memory import MemoryEntry
from schema.message import Message, MessageConnection
from schema.pagination import PageInfo
from schema.run import Run
from schema.stats import SessionStats
from services.pagination import Page

Parent = strawberry.Parent[SessionRow]


@strawberry.type
class Session:
    id: uuid.UUID
    external_id: str | None = strawberry.field(description="unique per user")
    title: str | None
    state: JSON
    state_version: int = strawberry.field(description="+1 on every state change")
    metadata: JSON
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    message_count: int

    @strawberry.field
    async def agent(self, root: Parent, info: strawberry.Info) -> Agent:
        return await resolve.agent_of(info, root)  # type: ignore[return-value]

    @strawberry.field
    async def messages(
        self,
        root: Parent,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        roles: list[MessageRole] | None = None,
    ) -> MessageConnection:
        return await resolve.messages_of(info, root, first, after, last, before, roles)  # type: ignore[return-value]

    @strawberry.field
    async def stats(self, root: Parent, info: strawberry.Info) -> SessionStats:
        return await resolve_stats.session_stats(info, root)  # type: ignore[return-value]

    @strawberry.field(description="SESSION-scoped entries")
    async def memory(self, root: Parent, info: strawberry.Info) -> list[MemoryEntry]:
        return await resolve.memory_of(info, root)  # type: ignore[return-value]

    @strawberry.field(description="the reply being generated now")
    async def active_run(self, root: Parent, info: strawberry.Info) -> Run | None:
        return await resolve_runs.active_run(info, root.id)  # type: ignore[return-value]

    @strawberry.field(description="the conversation as pydantic-ai ModelMessage JSON")
    async def history(self, root: Parent, info: strawberry.Info) -> JSON:
        return cast(JSON, await resolve.history_of(info, root))


@strawberry.type
class SessionEdge:
    cursor: str
    node: Session


@strawberry.type
class SessionConnection:
    @strawberry.field
    def edges(self, root: strawberry.Parent[Page[Any]]) -> list[SessionEdge]:
        return [SessionEdge(cursor=c, node=s) for c, s in zip(root.cursors, root.items, strict=True)]

    @strawberry.field
    def page_info(self, root: strawberry.Parent[Page[Any]]) -> PageInfo:
        return PageInfo.of(root)

    @strawberry.field
    def total_count(self, root: strawberry.Parent[Page[Any]]) -> int:
        return root.total_count


@strawberry.type
class SearchHit:
    message: Message
    session: Session
    snippet: str
    rank: float
