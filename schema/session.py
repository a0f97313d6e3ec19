from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.agent import Agent
from schema.context import Info
from schema.enums import MessageRole
from schema.fields import described_field
from schema.memory import MemoryEntry
from schema.message import Message, MessageConnection
from schema.pagination import PageInfo
from schema.run import Run
from schema.stats import SessionStats


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
    message_count: int = strawberry.field(description="of the active branch")
    head_message_id: uuid.UUID | None = strawberry.field(
        description="the last message of the active branch; null when the session has no messages"
    )
    agent_id: strawberry.Private[uuid.UUID]
    forked_from_id: strawberry.Private[uuid.UUID | None]

    @described_field("for a fork: the message it was forked at (null when its source is gone)")
    async def forked_from(self, info: Info) -> Message | None:
        return await info.context.message_by_id(self.forked_from_id)

    @strawberry.field
    async def agent(self, info: Info) -> Agent:
        return await info.context.agent_by_id(self.agent_id)

    @strawberry.field
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        roles: list[MessageRole] | None = None,
    ) -> MessageConnection:
        return await info.context.session_messages(self.id, first, after, last, before, roles)

    @strawberry.field
    async def stats(self, info: Info) -> SessionStats:
        return await info.context.session_stats(self.id)

    @described_field("SESSION-scoped entries")
    async def memory(self, info: Info) -> list[MemoryEntry]:
        return await info.context.session_memory(self.id)

    @described_field("the reply being generated now")
    async def active_run(self, info: Info) -> Run | None:
        return await info.context.active_run(self.id)

    @described_field("the active branch as pydantic-ai ModelMessage JSON")
    async def history(self, info: Info) -> JSON:
        return await info.context.history(self.id)


@strawberry.type
class SessionEdge:
    cursor: str
    node: Session


@strawberry.type
class SessionConnection:
    edges: list[SessionEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class SearchHit:
    message: Message
    session: Session
    snippet: str
    rank: float
