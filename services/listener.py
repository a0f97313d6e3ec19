"""The process's own PostgreSQL connection: its liveness lock and its LISTEN channels.

Not a pooled connection: a pool would drop the LISTENs and the session-level advisory lock
when the connection is released. When the connection is lost, so is the lock, and other
processes may now end this process's runs (``services/liveness.py``): ``on_lost`` is told at
once (the runtime stops its runs), and the connection is re-established with a growing delay,
whatever the error, until the listener is closed. ``on_back`` then lets watchers catch up on
what the missed notifications said.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

log = logging.getLogger("parley.listener")

Handler = Callable[[str], None]
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


class Listener:
    def __init__(
        self,
        dsn: str,
        owner_key: int,
        channels: dict[str, Handler],
        on_lost: Callable[[], None],
        on_back: Callable[[], None],
    ) -> None:
        self.dsn = dsn
        self.owner_key = owner_key
        self.channels = channels
        self.on_lost = on_lost
        self.on_back = on_back
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def connect(self) -> None:
        """Take the liveness lock and LISTEN (raises when the database cannot be reached)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", self.owner_key)
            for channel, handler in self.channels.items():
                await conn.add_listener(channel, _dispatch(handler))
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self._lost.clear()

    def _terminated(self, _conn: object) -> None:
        if self._closing:
            return
        log.warning("the runtime connection to PostgreSQL was lost; this process's runs stop")
        self._conn = None
        self._lost.set()
        self.on_lost()

    async def keep_connected(self) -> None:
        """Background task: re-establish the connection whenever it is lost."""
        while not self._closing:
            await self._lost.wait()
            delay = RETRY_FIRST_S
            while not self._closing:
                try:
                    await self.connect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure: the database may come back later
                    log.warning("runtime connection not re-established, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                log.info("runtime connection re-established")
                self.on_back()
                break

    async def close(self) -> None:
        self._closing = True
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (OSError, TimeoutError, asyncpg.PostgresError):
                conn.terminate()

    @property
    def backend_pid(self) -> int | None:
        """PostgreSQL's process for this connection (operators may terminate it to test failover)."""
        return self._conn.get_server_pid() if self._conn is not None else None


def _dispatch(handler: Handler) -> Callable[[object, int, str, object], None]:
    def on_notify(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            handler(str(payload))
        except Exception:  # one bad notification must not stop the others
            log.exception("a notification could not be handled")

    return on_notify
