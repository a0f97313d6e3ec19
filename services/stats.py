"""Analytics: per-session and per-period figures, computed in SQL aggregates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from models import Agent, User
from services.errors import ParleyError


class NotYetAvailable(ParleyError):
    code = "NOT_IMPLEMENTED"


@dataclass
class SessionStats:
    message_count: int
    user_messages: int
    assistant_messages: int
    tool_calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    total_cost: float
    average_response_time_ms: float | None
    first_message_at: datetime | None
    last_activity_at: datetime


@dataclass
class UsageStats:
    period_days: int
    sessions: int
    new_sessions: int
    active_sessions: int
    messages: int
    user_messages: int
    assistant_messages: int
    errors: int
    input_tokens: int
    output_tokens: int
    total_cost: float
    last_activity_at: datetime | None


@dataclass
class AgentUsage:
    agent: Agent
    sessions: int
    users: int
    messages: int


async def session_stats_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, SessionStats]:
    raise NotYetAvailable("session stats are not available yet")


async def usage_stats(user: User, days: int) -> UsageStats:
    raise NotYetAvailable("stats are not available yet")


async def popular_agents(user: User, days: int, limit: int) -> list[AgentUsage]:
    raise NotYetAvailable("popularAgents is not available yet")
