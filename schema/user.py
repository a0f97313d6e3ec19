from __future__ import annotations

import uuid

import strawberry

from schema.context import Info
from schema.fields import described_field
from schema.stats import DailyBudget, UsageStats


@strawberry.type
class User:
    id: uuid.UUID
    name: str
    is_admin: bool

    @described_field("the user's usage over the last day (what `stats(days: 1)` reports)")
    async def usage_today(self, info: Info) -> UsageStats:
        return await info.context.usage_today(self.id)

    @described_field("what is used and left of the daily budgets; runs past them fail with QUOTA_EXCEEDED")
    async def daily_budget(self, info: Info) -> DailyBudget:
        return await info.context.daily_budget(self.id)
