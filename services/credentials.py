"""API tokens this process has recently seen: a request need not look its token up again.

Only the SHA-256 digest is kept (as in the database). An entry holds ``TTL_S``; revoking a
user's tokens or deleting the user (the ``user_gone`` notice, heard by every process) drops
their entries at once, and so does losing the listener's connection (notices may be missed
then): a revoked token stops working everywhere as soon as the notice arrives, as before.
"""

from __future__ import annotations

import time
import uuid

from models import User

TTL_S = 30.0
MAX_ENTRIES = 10_000


class KnownTokens:
    def __init__(self) -> None:
        self._users: dict[str, tuple[User, float]] = {}

    def get(self, digest: str) -> User | None:
        found = self._users.get(digest)
        if found is None:
            return None
        user, until = found
        if until < time.monotonic():
            del self._users[digest]
            return None
        return user

    def put(self, digest: str, user: User) -> None:
        if len(self._users) >= MAX_ENTRIES:
            self._users.clear()  # many users at once: start over rather than track recency
        self._users[digest] = (user, time.monotonic() + TTL_S)

    def forget_user(self, user_id: uuid.UUID) -> None:
        for digest in [d for d, (u, _) in self._users.items() if u.id == user_id]:
            del self._users[digest]

    def clear(self) -> None:
        self._users.clear()
