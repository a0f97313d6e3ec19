"""Stats types, derived from the services' own definitions (``services.figures``)."""

from __future__ import annotations

# Strawberry reads inherited annotations in this module's namespace: they name these.
from datetime import datetime  # noqa: F401

import strawberry

from schema.agent import Agent
from services import figures


@strawberry.type
class SessionStats(figures.SessionStats):
    errors: int = strawberry.field(description="failed runs")


@strawberry.type(description="the caller's usage over the last `days`")
class UsageStats(figures.UsageStats):
    pass


@strawberry.type(
    description="the caller's daily budgets (PARLEY_USER_DAILY_TOKENS / _COST) over the last 24 hours"
)
class DailyBudget(figures.DailyBudget):
    token_limit: int | None = strawberry.field(description="null: no token budget")
    cost_limit: float | None = strawberry.field(description="USD; null: no cost budget")


@strawberry.type
class AgentUsage:
    agent: Agent
    sessions: int
    users: int
    messages: int
