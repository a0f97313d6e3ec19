from __future__ import annotations

import uuid

import strawberry

from models import Session
from resolvers.context import Context
from services import retention, search, stats

Info = strawberry.Info[Context, None]


async def session_stats(info: Info, root: Session) -> stats.SessionStats:
    return await info.context.loaders.session_stats.load(root.id)


async def usage(info: Info, days: int) -> stats.UsageStats:
    return await stats.usage_stats(info.context.user, days)


async def popular_agents(info: Info, days: int, limit: int) -> list[stats.AgentUsage]:
    return await stats.popular_agents(info.context.user, days, limit)


async def search_messages(
    info: Info, query: str, first: int, session_id: uuid.UUID | None
) -> list[search.Hit]:
    return await search.search_messages(
        info.context.user, query, first, session_id, info.context.runtime.limits
    )


async def cleanup(info: Info, inactive_days: int) -> int:
    return await retention.cleanup_as(info.context.user, inactive_days)
