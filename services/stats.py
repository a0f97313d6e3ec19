"""Analytics: per-session and per-period figures, computed in SQL aggregates.

Definitions (what every figure means):

* **messages** are rows of ``messages``; ``userMessages`` / ``assistantMessages`` count the
  USER / ASSISTANT rows.
* **toolCalls**: the number of tool calls made in ASSISTANT messages, i.e. the sum of
  ``jsonb_array_length(tool_calls)`` over ASSISTANT rows.
* **errors**: runs with status ``failed``.
* **inputTokens / outputTokens / totalCost**: summed over messages (ASSISTANT rows carry the
  usage and cost of the model response that produced them); missing values count as 0.
* **averageResponseTimeMs**: the mean of ``finished_at - started_at`` in milliseconds over the
  session's *completed* runs; ``null`` when it has none.
* **firstMessageAt**: when the oldest message still stored was written (``null`` when none);
  **lastActivityAt**: the session's ``last_activity_at``.

Period figures (:func:`usage_stats`, :func:`popular_agents`) cover the last ``days`` days
(``now() - days``, 1 ≤ days ≤ 3650, else ``BAD_USER_INPUT``):

* **sessions**: the caller's sessions with activity in the period (``last_activity_at`` in it);
  **newSessions**: created in the period; **activeSessions**: ``is_active`` and with activity
  in the period.
* **messages** (and by role, tokens, cost): messages whose ``created_at`` is in the period.
* **errors**: failed runs whose ``started_at`` is in the period.
* **lastActivityAt**: the latest ``last_activity_at`` among the sessions with activity in the
  period (``null`` when there was none).
* **popularAgents** (``limit`` 1..100): per agent, ``sessions`` = sessions of that agent with
  activity in the period, ``users`` = distinct owners of those sessions, ``messages`` = messages
  created in the period in that agent's sessions. Agents without sessions or messages in the
  period are left out; ordered by messages, then sessions (both descending), then agent name.
  Admins see everyone's usage; others see only their own (``users`` is then at most 1).

Every function issues exactly one SQL statement, whatever the number of sessions involved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from models import Agent, User
from services.database import acquire, model_from
from services.errors import BadInput
from services.figures import SessionStats, UsageStats

MAX_DAYS = 3650
MAX_AGENTS = 100


@dataclass
class AgentUsage:
    agent: Agent
    sessions: int
    users: int
    messages: int


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise BadInput(f"days must be between 1 and {MAX_DAYS}")
    return days


# Aggregates over a set of message rows `m` (shared by session and period figures).
_MESSAGE_AGGREGATES = """
    count(*) AS message_count,
    count(*) FILTER (WHERE m.role = 'user') AS user_messages,
    count(*) FILTER (WHERE m.role = 'assistant') AS assistant_messages,
    coalesce(sum(m.input_tokens), 0)::bigint AS input_tokens,
    coalesce(sum(m.output_tokens), 0)::bigint AS output_tokens,
    coalesce(sum(m.cost), 0)::float8 AS total_cost
"""
_TOOL_CALLS = """
    coalesce(sum(CASE WHEN m.role = 'assistant' AND jsonb_typeof(m.tool_calls) = 'array'
                      THEN jsonb_array_length(m.tool_calls) END), 0)::bigint AS tool_calls
"""
# The period's start; stable within a statement, so indexes can use it.
_SINCE = "(now() - make_interval(days => $2::int))"

_SESSION_STATS_SQL = f"""
SELECT s.id, s.last_activity_at, m.*, r.errors, r.average_response_time_ms
FROM sessions s
CROSS JOIN LATERAL (
    SELECT {_MESSAGE_AGGREGATES}, {_TOOL_CALLS}, min(m.created_at) AS first_message_at
    FROM messages m WHERE m.session_id = s.id
) m
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE r.status = 'failed') AS errors,
           (avg(extract(epoch FROM r.finished_at - r.started_at) * 1000)
                FILTER (WHERE r.status = 'completed' AND r.finished_at IS NOT NULL))::float8
               AS average_response_time_ms
    FROM runs r WHERE r.session_id = s.id
) r
WHERE s.id = ANY($1::uuid[])
"""


async def session_stats_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, SessionStats]:
    """Stats of many sessions in one aggregate statement (the DataLoader's batch function).

    Callers pass ids of sessions already resolved for the requesting user.
    """
    if not session_ids:
        return {}
    async with acquire() as conn:
        records = await conn.fetch(_SESSION_STATS_SQL, list(set(session_ids)))
    return {
        r["id"]: SessionStats(
            message_count=r["message_count"],
            user_messages=r["user_messages"],
            assistant_messages=r["assistant_messages"],
            tool_calls=r["tool_calls"],
            errors=r["errors"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            total_cost=r["total_cost"],
            average_response_time_ms=r["average_response_time_ms"],
            first_message_at=r["first_message_at"],
            last_activity_at=r["last_activity_at"],
        )
        for r in records
    }


_USAGE_SQL = f"""
WITH ss AS (
    SELECT count(*) FILTER (WHERE s.last_activity_at >= {_SINCE}) AS sessions,
           count(*) FILTER (WHERE s.created_at >= {_SINCE}) AS new_sessions,
           count(*) FILTER (WHERE s.is_active AND s.last_activity_at >= {_SINCE}) AS active_sessions,
           max(s.last_activity_at) FILTER (WHERE s.last_activity_at >= {_SINCE}) AS last_activity_at
    FROM sessions s WHERE s.user_id = $1
),
mm AS (
    SELECT {_MESSAGE_AGGREGATES}
    FROM sessions s JOIN messages m ON m.session_id = s.id
    WHERE s.user_id = $1 AND m.created_at >= {_SINCE}
),
rr AS (
    SELECT count(*) AS errors
    FROM sessions s JOIN runs r ON r.session_id = s.id
    WHERE s.user_id = $1 AND r.status = 'failed' AND r.started_at >= {_SINCE}
)
SELECT * FROM ss, mm, rr
"""


async def usage_stats(user: User, days: int) -> UsageStats:
    """The caller's figures over the last ``days`` days (see the module docstring)."""
    check_days(days)
    async with acquire() as conn:
        r = await conn.fetchrow(_USAGE_SQL, user.id, days)
    assert r is not None
    return UsageStats(
        period_days=days,
        sessions=r["sessions"],
        new_sessions=r["new_sessions"],
        active_sessions=r["active_sessions"],
        messages=r["message_count"],
        user_messages=r["user_messages"],
        assistant_messages=r["assistant_messages"],
        errors=r["errors"],
        input_tokens=r["input_tokens"],
        output_tokens=r["output_tokens"],
        total_cost=r["total_cost"],
        last_activity_at=r["last_activity_at"],
    )


_AGENT_COLUMNS = [
    "id",
    "name",
    "model",
    "instructions",
    "memory_enabled",
    "history_limit",
    "created_at",
    "mcp_servers",
    "approval_required",
    "updated_at",
]

# $1: days, $2: limit; the caller's own usage adds $3: the user.
_POPULAR_SQL = """
WITH act AS (
    SELECT s.agent_id, count(*) AS sessions, count(DISTINCT s.user_id) AS users
    FROM sessions s
    WHERE s.last_activity_at >= {since} {own}
    GROUP BY s.agent_id
),
msg AS (
    SELECT s.agent_id, count(*) AS messages
    FROM sessions s JOIN messages m ON m.session_id = s.id
    WHERE m.created_at >= {since} {own}
    GROUP BY s.agent_id
),
usage AS (
    SELECT agent_id, coalesce(act.sessions, 0) AS sessions, coalesce(act.users, 0) AS users,
           coalesce(msg.messages, 0) AS messages
    FROM act FULL JOIN msg USING (agent_id)
)
SELECT {agent}, u.sessions, u.users, u.messages
FROM usage u JOIN agents a ON a.id = u.agent_id
ORDER BY u.messages DESC, u.sessions DESC, a.name
LIMIT $2
"""
_POPULAR_PARTS = {
    "since": "(now() - make_interval(days => $1::int))",
    "agent": ", ".join(f"a.{c}" for c in _AGENT_COLUMNS),
}
_POPULAR_ALL_SQL = _POPULAR_SQL.format(own="", **_POPULAR_PARTS)
_POPULAR_OWN_SQL = _POPULAR_SQL.format(own="AND s.user_id = $3", **_POPULAR_PARTS)


async def popular_agents(user: User, days: int, limit: int) -> list[AgentUsage]:
    """Per-agent usage over the period: everyone's for admins, the caller's own otherwise."""
    check_days(days)
    if not 1 <= limit <= MAX_AGENTS:
        raise BadInput(f"limit must be between 1 and {MAX_AGENTS}")
    async with acquire() as conn:
        if user.is_admin:
            records = await conn.fetch(_POPULAR_ALL_SQL, days, limit)
        else:
            records = await conn.fetch(_POPULAR_OWN_SQL, days, limit, user.id)
    return [
        AgentUsage(
            agent=_agent_from(r),
            sessions=r["sessions"],
            users=r["users"],
            messages=r["messages"],
        )
        for r in records
    ]


def _agent_from(record: Any) -> Agent:
    return model_from(Agent, {c: record[c] for c in _AGENT_COLUMNS})
