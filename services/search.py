"""Full-text search over the caller's messages.

PostgreSQL full-text search on the generated ``messages.search`` column
(``to_tsvector('english', content)``, GIN-indexed, migration 0002):

* the query is parsed with ``websearch_to_tsquery('english', query)``: plain words, ``"quoted
  phrases"``, ``or`` and ``-excluded`` words. It never fails on bad syntax; a query without any
  searchable word (blank, only stop words or punctuation) finds nothing;
* ``rank`` is ``ts_rank(search, query)``; hits come best first (ties: newest first);
* ``snippet`` is ``ts_headline('english', content, query, 'StartSel=<b>, StopSel=</b>')`` run over
  the content with ``&``, ``<`` and ``>`` HTML-escaped first, so a snippet is safe HTML whose only
  tags are the ``<b>…</b>`` around matched words;
* only the caller's messages are searched (joined through their sessions); ``sessionId`` narrows
  the search to one of their sessions, and someone else's session is ``NOT_FOUND``;
* ``first`` is at most 100 (``BAD_USER_INPUT`` beyond).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from models import Session, User
from services.database import acquire, model_from
from services.limits import Limits, short_text
from services.owned import require_session
from services.transcript import COLUMNS, MessageRow, message_from_record

HEADLINE_OPTIONS = "StartSel=<b>, StopSel=</b>"

_MESSAGE_COLUMNS = COLUMNS.split(", ")
_SESSION_COLUMNS = [
    "id",
    "user_id",
    "agent_id",
    "external_id",
    "title",
    "state",
    "state_version",
    "metadata",
    "is_active",
    "last_sequence",
    "message_count",
    "created_at",
    "updated_at",
    "last_activity_at",
    "head_id",
    "forked_from_id",
]

# $1 user, $2 query text, $3 limit[, $4 session].
# The headline (costly) is computed for the page only, after ranking and LIMIT.
_SEARCH_SQL = f"""
WITH q AS (SELECT websearch_to_tsquery('english', $2::text) AS q),
hits AS (
    SELECT m.id, ts_rank(m.search, q.q)::float8 AS rank
    FROM messages m JOIN sessions s ON s.id = m.session_id, q
    WHERE s.user_id = $1 AND m.search @@ q.q {{in_session}}
    ORDER BY rank DESC, m.created_at DESC, m.id
    LIMIT $3
)
SELECT hits.rank,
       ts_headline('english',
                   replace(replace(replace(m.content, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   q.q, '{HEADLINE_OPTIONS}') AS snippet,
       {", ".join(f"m.{c}" for c in _MESSAGE_COLUMNS)},
       {", ".join(f"s.{c} AS s_{c}" for c in _SESSION_COLUMNS)}
FROM hits JOIN messages m ON m.id = hits.id JOIN sessions s ON s.id = m.session_id, q
ORDER BY hits.rank DESC, m.created_at DESC, m.id
"""
_SEARCH_ALL_SQL = _SEARCH_SQL.format(in_session="")
_SEARCH_SESSION_SQL = _SEARCH_SQL.format(in_session="AND m.session_id = $4")


@dataclass
class Hit:
    message: MessageRow
    session: Session
    snippet: str
    rank: float


async def search_messages(
    user: User, query: str, first: int, session_id: uuid.UUID | None, limits: Limits
) -> list[Hit]:
    """The caller's messages matching ``query``, best first (see the module docstring)."""
    size = limits.page_size(first)
    short_text(query, "query", limit=1000)
    if session_id is not None:
        await require_session(user, session_id)
    if not query.strip() or size == 0:
        return []
    async with acquire() as conn:
        if session_id is None:
            records = await conn.fetch(_SEARCH_ALL_SQL, user.id, query, size)
        else:
            records = await conn.fetch(_SEARCH_SESSION_SQL, user.id, query, size, session_id)
    sessions: dict[uuid.UUID, Session] = {}
    hits = []
    for r in records:
        sid = r["s_id"]
        if sid not in sessions:
            sessions[sid] = _session_from(r)
        hits.append(
            Hit(
                message=message_from_record({c: r[c] for c in _MESSAGE_COLUMNS}),
                session=sessions[sid],
                snippet=r["snippet"],
                rank=r["rank"],
            )
        )
    return hits


def _session_from(record: Any) -> Session:
    return model_from(Session, {c: record[f"s_{c}"] for c in _SESSION_COLUMNS})
