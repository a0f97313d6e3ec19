"""The per-process runtime: liveness lock, cancel signals, running replies, crash recovery.

Each process holds a session-level advisory lock (its ``owner_key``) on one dedicated
connection for its whole life. A RUNNING run whose owner key is not held belongs to a dead
process: it is marked FAILED/INTERRUPTED at start and whenever its session is next used.
The same connection LISTENs for cancel requests from other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import asyncpg

from services import fanout, llm, notices, retention
from services.connections import Connections, sweep_dead
from services.database import acquire, asyncpg_dsn
from services.hub import Hub, Resync
from services.settings import Settings
from services.transcript import ALIVE_SQL

log = logging.getLogger("parley.runtime")

CANCEL_CHANNEL = notices.CANCEL_CHANNEL
LAG_PROBE_S = 0.02


class Runtime:
    def __init__(self, database_url: str, settings: Settings) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.settings = settings
        self.owner_key = secrets.randbits(62)
        self.hub = Hub()
        self.fanout = fanout.Fanout(self.owner_key, self.hub.deliver)
        self.fanout.watched = self.hub.watched
        self.hub.publish = self.fanout.publish
        self.handles: dict[uuid.UUID, Any] = {}  # run id → runs.RunHandle
        self.connections = Connections(self.owner_key, settings.max_connections_per_user)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn: asyncpg.Connection | None = None
        self._closing = False
        self.loop_lag = 0.0
        self._lag_monitor: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._lag_monitor = asyncio.get_running_loop().create_task(self._watch_lag())
        await self._connect()
        count = await recover_interrupted()
        if count:
            log.warning("marked %d runs of stopped processes as INTERRUPTED", count)
        await sweep_dead()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        await conn.execute("SELECT pg_advisory_lock($1)", self.owner_key)
        await conn.add_listener(CANCEL_CHANNEL, self._on_cancel)
        await conn.add_listener(fanout.CHANNEL, self._on_event)
        await conn.add_listener(notices.CONTROL_CHANNEL, self._on_control)
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_lost(self, _conn: object) -> None:
        if not self._closing and self._reconnecting is None:
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        try:
            while not self._closing:
                try:
                    await self._connect()
                    log.info("runtime connection re-established")
                    # Notifications sent while we were away are lost: watchers catch up from the DB.
                    for session_id in self.hub.sessions():
                        self.hub.deliver(session_id, Resync())
                    return
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("runtime connection lost, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._reconnecting = None

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            run_id = uuid.UUID(payload)
        except ValueError:
            return
        handle = self.handles.get(run_id)
        if handle is not None:
            handle.cancel("user")

    def _on_event(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.fanout.on_notify(payload)

    def _on_control(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = notices.parse_control(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed control notice")
            return
        for session_id in notice.sessions_deleted:
            self.hub.end_session(session_id)
        if notice.user_gone is not None:
            self.spawn(self.connections.close_user(notice.user_gone, notice.reason))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watch_lag(self) -> None:
        """How late the event loop runs (smoothed): a busy process paces its streams slower."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            late = max(loop.time() - start - LAG_PROBE_S, 0.0)
            self.loop_lag = 0.8 * self.loop_lag + 0.2 * late

    async def close(self) -> None:
        self._closing = True
        if self._lag_monitor is not None:
            self._lag_monitor.cancel()
        for handle in list(self.handles.values()):
            handle.cancel("shutdown")
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


async def recover_interrupted() -> int:
    async with acquire() as conn:
        result = await conn.execute(
            f"""UPDATE runs SET status = 'failed', finished_at = now(), error_code = 'INTERRUPTED',
                   error_message = 'the server process running this reply stopped before it finished'
               WHERE status = 'running' AND NOT {ALIVE_SQL.format(key="runs.owner_key")}"""
        )
    return int(result.split()[-1])


_current: Runtime | None = None


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the Parley runtime is not running (start the app's lifespan)")
    return _current


def current_or_none() -> Runtime | None:
    return _current


@contextlib.asynccontextmanager
async def running(database_url: str, settings: Settings) -> AsyncIterator[Runtime]:
    global _current
    llm.load_plugins(settings.plugins)
    runtime = Runtime(database_url, settings)
    await runtime.start()
    _current = runtime
    try:
        async with retention.background(settings):
            yield runtime
    finally:
        _current = None
        await runtime.close()
