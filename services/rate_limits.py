"""PARLEY_RATE_LIMIT: at most N GraphQL operations per user per minute, across every process.

A token bucket per user, kept in PostgreSQL (the unlogged table ``rate_buckets``) so that all
workers and hosts share it exactly: the bucket holds up to N operations and refills at N per
minute, so a user may burst N operations at once and then keeps to N a minute. Taking one is a
single atomic statement (the row lock orders concurrent takes of one user); a refused take
writes nothing. It costs one statement per operation, and nothing at all when no limit is set.
"""

from __future__ import annotations

import math
import uuid

import asyncpg

from services.database import acquire
from services.errors import RateLimited

# The bucket refilled for the time since its last take, then one taken, if one is there.
_REFILLED = (
    "least($2::float8, b.tokens + greatest(extract(epoch FROM now() - b.updated_at)::float8, 0) * $3::float8)"
)
_TAKE_SQL = f"""
INSERT INTO rate_buckets AS b (user_id, tokens, updated_at) VALUES ($1, $2::float8 - 1, now())
ON CONFLICT (user_id) DO UPDATE SET tokens = {_REFILLED} - 1, updated_at = now()
WHERE {_REFILLED} >= 1
RETURNING tokens
"""
_LEFT_SQL = f"SELECT {_REFILLED} FROM rate_buckets b WHERE b.user_id = $1"
# A bucket untouched for a minute is full again: the same as no row at all.
_FORGET_SQL = "DELETE FROM rate_buckets WHERE updated_at < now() - interval '1 minute'"


class RateLimits:
    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute

    @property
    def enabled(self) -> bool:
        return self.per_minute is not None

    async def take(self, user_id: uuid.UUID) -> None:
        """One operation of the user's, or RATE_LIMITED with the seconds until the next one."""
        if self.per_minute is None:
            return
        capacity, per_second = float(self.per_minute), self.per_minute / 60.0
        async with acquire() as conn:
            taken = await conn.fetchval(_TAKE_SQL, user_id, capacity, per_second)
            if taken is not None:
                return
            left = await conn.fetchval(_LEFT_SQL, user_id, capacity, per_second)
        missing = 1.0 - float(left or 0.0)
        raise RateLimited(retry_after=max(1, math.ceil(missing / per_second)))


async def forget_full(conn: asyncpg.Connection) -> None:
    """Drop buckets that have refilled (the runtime calls this now and then)."""
    await conn.execute(_FORGET_SQL)
