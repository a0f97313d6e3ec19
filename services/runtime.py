"""The runtime: everything a Parley process runs besides requests, owned in one place.

One :class:`Runtime` per app, created in the app's lifespan and passed explicitly (through the
GraphQL context) to the services. It owns every background task in one ``asyncio.TaskGroup``:
the run tasks, the fan-out flusher and inbox drain, the listener's reconnection, the reaper of
dead processes' runs, the retention sweeper and the event-loop lag probe.

It stops in a fixed order:

1. refuse new turns;
2. cancel the running replies and wait (a few seconds) while they record their ends
   (FAILED/INTERRUPTED, the partial text kept as the reply);
3. send what is left to other processes, then stop the background tasks;
4. close the listener (this releases the process's liveness lock);
5. close the database pools.

Steps 1-2 may start early (:meth:`begin_stop`, called when the server gets SIGTERM) so that
requests waiting for a reply get their answer before the server stops serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from models import Run
from services import events, liveness, notices, retention
from services.connections import Connections, sweep_dead
from services.conversation import HistoryCache
from services.database import Database, acquire, asyncpg_dsn
from services.errors import ServiceUnavailable
from services.fanout import CHANNEL, Fanout
from services.hub import Hub, run_of
from services.limits import Limits
from services.listener import Listener
from services.llm import ModelRegistry
from services.runs import RunRegistry
from services.runs.agent import Agents
from services.settings import Settings
from services.tools import Toolbox

log = logging.getLogger("parley.runtime")

LAG_PROBE_S = 0.02
WATCH_RENEW_S = 5.0  # under the fan-out's WATCH_TTL_S
STOP_RUNS_S = 7.0  # a clean stop must end within 10 s; replies get most of it to record their ends


class Runtime:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.limits = Limits.of(settings)
        self.owner_key = secrets.randbits(62)
        self.db = Database(database_url, settings.pool_size)
        self.hub = Hub(on_first_watcher=self._watch_started)
        self.fanout = Fanout(self.owner_key, self.hub)
        self.runs = RunRegistry()
        self.connections = Connections(self.owner_key, settings.max_connections_per_user)
        self.models = ModelRegistry()
        self.agents = Agents()
        self.tools = Toolbox(settings.tool_timeout_s, self._keep)
        self.history = HistoryCache()
        self.sweeper = retention.Sweeper()
        self.listener = Listener(
            asyncpg_dsn(database_url),
            self.owner_key,
            {
                notices.CANCEL_CHANNEL: self._on_cancel,
                CHANNEL: self.fanout.on_notify,
                notices.CONTROL_CHANNEL: self._on_control,
            },
            on_lost=self._on_lost,
            on_back=self.fanout.resync_all,
        )
        self.loop_lag = 0.0
        self.stopping = False
        self._group: asyncio.TaskGroup | None = None
        self._spawned: set[asyncio.Task[None]] = set()
        self._kept: set[asyncio.Task[None]] = set()  # held connections (MCP servers)
        self._new_watches: set[uuid.UUID] = set()
        self._announce = asyncio.Event()

    # --- what services use -----------------------------------------------------------------

    def emit(self, session_id: uuid.UUID, event: events.AgentEvent) -> None:
        """An event of this process: to local watchers now, to other processes' soon."""
        self.hub.deliver(session_id, event)
        # Events outside runs (messages recorded with addMessages) travel under the session.
        self.fanout.publish(session_id, run_of(event) or session_id, event)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task of the runtime (it outlives the request that started it)."""
        if self._group is None or self.stopping:
            coro.close()
            raise ServiceUnavailable("this server is shutting down; retry")
        task = self._group.create_task(_logged(coro, name), name=name)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)
        return task

    def _keep(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A task holding a connection open until the stop (not a unit of work: never ``busy``)."""
        if self._group is None or self.stopping:
            coro.close()
            return
        task = self._group.create_task(_logged(coro, name), name=name)
        self._kept.add(task)
        task.add_done_callback(self._kept.discard)

    @property
    def busy(self) -> bool:
        """Whether a task it was asked to run (a turn, closing sockets) is still going."""
        return bool(self._spawned)

    def check_accepting(self) -> None:
        """New turns need a live process: not stopping, and holding its liveness lock."""
        if self.stopping:
            raise ServiceUnavailable("this server is shutting down; retry")
        if not self.listener.connected:
            raise ServiceUnavailable("this server lost its database connection; retry")

    # --- lifecycle --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        self.models.load_plugins(self.settings.plugins)
        await self.db.open()
        try:
            await self.listener.connect()
            try:
                async with asyncio.TaskGroup() as group:
                    self._group = group
                    await self._reap()
                    await sweep_dead()
                    background = [
                        self._background(self.listener.keep_connected(), "parley-listener"),
                        self._background(self.fanout.run_flusher(), "parley-flusher"),
                        self._background(self.fanout.run_drain(), "parley-inbox"),
                        self._background(self._watch_lag(), "parley-lag"),
                        self._background(self._reaper(), "parley-reaper"),
                        self._background(self._announce_watching(), "parley-watching"),
                    ]
                    if self.settings.retention_days is not None:
                        loop = retention.sweep_forever(
                            self.settings.retention_days, self.settings.retention_interval_s, self.sweeper
                        )
                        background.append(self._background(loop, "parley-retention"))
                    try:
                        yield self
                    finally:
                        await self._stop(background)
            finally:
                await self.listener.close()
        finally:
            await self.db.close()

    def _background(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._group is not None
        return self._group.create_task(_logged(coro, name), name=name)

    def begin_stop(self) -> list[asyncio.Event]:
        """Steps 1-2 of stopping, at once: refuse new turns and cancel the running replies."""
        self.stopping = True
        return [handle.done for handle in self.runs.cancel_all("shutdown")]

    async def _stop(self, background: list[asyncio.Task[None]]) -> None:
        ended = self.begin_stop()
        if ended:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(e.wait()) for e in ended], timeout=STOP_RUNS_S
            )
            for waiter in late:
                waiter.cancel()
            if late:
                log.warning("%d replies did not record their end in time", len(late))
        await self.fanout.flush_all()
        # What is left (stuck replies, sockets being closed) is cancelled with the background
        # tasks: the group waits for every task it owns before the listener and the pools close.
        for task in [*background, *self._spawned, *self._kept]:
            task.cancel()

    # --- background work --------------------------------------------------------------------

    async def _watch_lag(self) -> None:
        """How late the event loop runs (smoothed): a busy process paces its streams slower."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            late = max(loop.time() - start - LAG_PROBE_S, 0.0)
            self.loop_lag = 0.8 * self.loop_lag + 0.2 * late

    async def _reaper(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(liveness.REAP_EVERY_S)
            rounds += 1
            try:
                await self._reap()
                if rounds % 60 == 0:
                    async with acquire() as conn:
                        await liveness.forget_kept_text(conn)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: the next round tries again
                log.debug("reaping dead processes' runs failed", exc_info=True)

    async def _reap(self) -> None:
        """End the runs of dead processes and tell every process's watchers."""
        async with acquire() as conn:
            if not await conn.fetchval(liveness.ANY_ORPHAN_SQL):
                return
            async with conn.transaction():
                ended = await liveness.reap(conn)
                await self.fanout.announce_ended(conn, ended)
        if ended:
            log.warning("ended %d runs of stopped processes as INTERRUPTED", len(ended))
        for run in await Run.filter(id__in=[e.run_id for e in ended]):
            self.hub.deliver(run.session_id, events.RunFinished(run))

    def _watch_started(self, session_id: uuid.UUID) -> None:
        self._new_watches.add(session_id)
        self._announce.set()

    async def _announce_watching(self) -> None:
        """Tell the other processes which sessions this one watches: new ones at once, all of
        them every WATCH_RENEW_S (a watch announcement expires unless renewed)."""
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + WATCH_RENEW_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._announce.wait(), max(renew_at - loop.time(), 0.0))
            self._announce.clear()
            if loop.time() >= renew_at:
                sessions, renew_at = self.hub.sessions(), loop.time() + WATCH_RENEW_S
            else:
                sessions = list(self._new_watches)
            self._new_watches.clear()
            if not sessions:
                continue
            try:
                async with acquire() as conn:
                    await notices.watching(conn, self.owner_key, sessions)
            except Exception:  # the next renewal tries again
                log.debug("could not announce watched sessions", exc_info=True)

    # --- notifications ----------------------------------------------------------------------

    def _on_cancel(self, payload: str) -> None:
        try:
            run_id = uuid.UUID(payload)
        except ValueError:
            return
        handle = self.runs.get(run_id)
        if handle is not None:
            handle.cancel("user")

    def _on_control(self, payload: str) -> None:
        notice = notices.parse_control(payload)
        if notice.watching and notice.owner != self.owner_key:
            self.fanout.note_watching(notice.watching)
        for session_id in notice.sessions_deleted:
            self.hub.end_session(session_id)
        if notice.user_gone is not None and not self.stopping:
            self.spawn(self.connections.close_user(notice.user_gone, notice.reason), "parley-close-sockets")

    def _on_lost(self) -> None:
        # Without the liveness lock other processes may end these runs and start new ones in
        # their sessions: stop them now rather than write on.
        handles = self.runs.cancel_all("lost")
        if handles:
            log.warning("stopping %d running replies: the liveness lock is gone", len(handles))


async def _logged(coro: Coroutine[Any, Any, None], name: str) -> None:
    """A task of the group never fails the group: what it raises is logged here."""
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s failed", name)
