"""Daily budgets: a user's tokens and cost over the last 24 hours, checked before a run starts.

PostgreSQL is the source of truth: as a run ends, the database itself copies its usage from the
``runs`` row into ``run_usage`` under the user (a trigger; see migration 0007), so deleting a
session gives nothing back. The check reads it afresh for every new run (one indexed statement,
only when a budget is set): every process and host sees the same figures and no cache lets a
user overspend. A run's usage counts once it ends: replies still going in a user's other
sessions may take the user past the budget by what they use, but no reply starts past it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from models import User
from services.database import acquire
from services.errors import QuotaExceeded
from services.figures import DailyBudget
from services.settings import Settings

_SPENT_SQL = """
SELECT coalesce(sum(tokens), 0)::bigint AS tokens, coalesce(sum(cost), 0)::float8 AS cost
FROM run_usage WHERE user_id = $1 AND finished_at >= now() - interval '24 hours'
"""
_FORGET_SQL = "DELETE FROM run_usage WHERE finished_at < now() - interval '2 days'"
_RETRY_SQL = "SELECT 1 FROM runs WHERE session_id = $1 AND idempotency_key = $2"


@dataclass(frozen=True)
class Spent:
    tokens: int
    cost: float


class Budgets:
    def __init__(self, settings: Settings) -> None:
        self.daily_tokens = settings.user_daily_tokens
        self.daily_cost = settings.user_daily_cost

    @property
    def enabled(self) -> bool:
        return self.daily_tokens is not None or self.daily_cost is not None

    async def check(self, user: User, session_id: uuid.UUID, idempotency_key: str | None) -> None:
        """QUOTA_EXCEEDED when the user's last 24 hours reach a budget (a retry of a run already
        started with the same idempotency key is no new run: it passes)."""
        if not self.enabled:
            return
        over = self._over(await self.spent(user.id))
        if over is None:
            return
        if idempotency_key is not None:
            async with acquire() as conn:
                if await conn.fetchval(_RETRY_SQL, session_id, idempotency_key):
                    return
        raise QuotaExceeded(over)

    async def spent(self, user_id: uuid.UUID) -> Spent:
        """The user's usage over the last 24 hours (runs that ended in it)."""
        async with acquire() as conn:
            record = await conn.fetchrow(_SPENT_SQL, user_id)
        assert record is not None
        return Spent(record["tokens"], record["cost"])

    async def of(self, user_id: uuid.UUID) -> DailyBudget:
        """What the user has used and has left of each budget (limits None when unset)."""
        spent = await self.spent(user_id)
        return DailyBudget(
            token_limit=self.daily_tokens,
            cost_limit=self.daily_cost,
            tokens_used=spent.tokens,
            cost_used=spent.cost,
            tokens_left=max(self.daily_tokens - spent.tokens, 0) if self.daily_tokens is not None else None,
            cost_left=max(self.daily_cost - spent.cost, 0.0) if self.daily_cost is not None else None,
        )

    def _over(self, spent: Spent) -> str | None:
        if self.daily_tokens is not None and spent.tokens >= self.daily_tokens:
            return (
                f"the daily token budget is spent ({spent.tokens} of {self.daily_tokens} tokens "
                "in the last 24 hours); retry later"
            )
        if self.daily_cost is not None and spent.cost >= self.daily_cost:
            return (
                f"the daily cost budget is spent (${spent.cost:.4f} of ${self.daily_cost:.4f} "
                "in the last 24 hours); retry later"
            )
        return None


async def forget_old(conn: asyncpg.Connection) -> None:
    """Usage older than any budget's window is of no more use (the runtime calls this now and then)."""
    await conn.execute(_FORGET_SQL)
