from __future__ import annotations

import uuid

from resolvers import mapping
from resolvers.context import Context
from schema.session import SearchHit
from schema.stats import AgentUsage, UsageStats
from services import retention, search, stats


async def usage(ctx: Context, days: int) -> UsageStats:
    return mapping.usage_stats(await stats.usage_stats(ctx.user, days))


async def popular_agents(ctx: Context, days: int, limit: int) -> list[AgentUsage]:
    return [mapping.agent_usage(a) for a in await stats.popular_agents(ctx.user, days, limit)]


async def search_messages(
    ctx: Context, query: str, first: int, session_id: uuid.UUID | None
) -> list[SearchHit]:
    hits = await search.search_messages(ctx.user, query, first, session_id, ctx.runtime.limits)
    return [mapping.search_hit(h) for h in hits]


async def cleanup(ctx: Context, inactive_days: int) -> int:
    return await retention.cleanup_as(ctx.user, inactive_days)
