from __future__ import annotations

import uuid

import strawberry

from resolvers import agents, memory, runs, sessions, stats
from schema.agent import Agent
from schema.enums import MemoryScope
from schema.inputs import SessionFilter
from schema.memory import MemoryEntry
from schema.message import MessageConnection
from schema.run import Run
from schema.session import SearchHit, Session, SessionConnection
from schema.stats import AgentUsage, UsageStats
from schema.user import User

Info = strawberry.Info


@strawberry.type
class Query:
    @strawberry.field
    def viewer(self, info: Info) -> User:
        return info.context.user  # type: ignore[no-any-return]

    @strawberry.field
    async def agents(self, info: Info) -> list[Agent]:
        return await agents.agent_list(info)  # type: ignore[return-value]

    @strawberry.field
    async def agent(self, info: Info, name: str) -> Agent | None:
        return await agents.agent(info, name)  # type: ignore[return-value]

    @strawberry.field
    async def session(
        self, info: Info, id: uuid.UUID | None = None, external_id: str | None = None
    ) -> Session | None:
        return await sessions.session(info, id, external_id)  # type: ignore[return-value]

    @strawberry.field(description="most recent activity first")
    async def sessions(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: SessionFilter | None = None,
    ) -> SessionConnection:
        return await sessions.session_list(info, first, after, filter)  # type: ignore[return-value]

    @strawberry.field
    async def messages(
        self,
        info: Info,
        session_id: uuid.UUID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnection:
        return await sessions.message_list(info, session_id, first, after, last, before)  # type: ignore[return-value]

    @strawberry.field
    async def run(self, info: Info, id: uuid.UUID) -> Run | None:
        return await runs.run(info, id)  # type: ignore[return-value]

    @strawberry.field
    async def stats(self, info: Info, days: int | None = 30) -> UsageStats:
        return await stats.usage(info, 30 if days is None else days)  # type: ignore[return-value]

    @strawberry.field(description="admins: everyone's; others: their own")
    async def popular_agents(
        self, info: Info, days: int | None = 30, limit: int | None = 10
    ) -> list[AgentUsage]:
        return await stats.popular_agents(info, 30 if days is None else days, 10 if limit is None else limit)  # type: ignore[return-value]

    @strawberry.field
    async def memory(
        self, info: Info, scope: MemoryScope | None = MemoryScope.USER, session_id: uuid.UUID | None = None
    ) -> list[MemoryEntry]:
        return await memory.entries(info, scope or MemoryScope.USER, session_id)  # type: ignore[return-value]

    @strawberry.field
    async def search_messages(
        self, info: Info, query: str, first: int | None = 20, session_id: uuid.UUID | None = None
    ) -> list[SearchHit]:
        return await stats.search_messages(info, query, 20 if first is None else first, session_id)  # type: ignore[return-value]
