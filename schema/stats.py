from __future__ import annotations

from datetime import datetime

import strawberry

from schema.agent import Agent


@strawberry.type
class SessionStats:
    message_count: int
    user_messages: int
    assistant_messages: int
    tool_calls: int
    errors: int = strawberry.field(description="failed runs")
    input_tokens: int
    output_tokens: int
    total_cost: float
    average_response_time_ms: float | None
    first_message_at: datetime | None
    last_activity_at: datetime


@strawberry.type(description="the caller's usage over the last `days`")
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


@strawberry.type
class AgentUsage:
    agent: Agent
    sessions: int
    users: int
    messages: int
