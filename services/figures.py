"""What the stats report, as plain values (the GraphQL types derive from these definitions).

Free of the database and the ORM on purpose: the schema layer builds on these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
class DailyBudget:
    token_limit: int | None
    cost_limit: float | None
    tokens_used: int
    cost_used: float
    tokens_left: int | None
    cost_left: float | None


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
