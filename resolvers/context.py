"""The per-request context: the caller, settings and fresh DataLoaders."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from models import Agent, MemoryEntry, Message, Run, User
from services import agents, memory, messages, runs, stats
from services.errors import Unauthenticated
from services.limits import Limits
from services.runtime import Runtime
from services.users import authenticate

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _loader(fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]], default: Any = None) -> DataLoader[K, V]:
    async def load(keys: Sequence[K]) -> list[V]:
        found = await fetch(list(keys))
        return [found.get(k, default) for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """One set per request (and per event on long subscriptions), so nothing is cached stale.

    Each loader is made on first use: a subscription event that needs none costs nothing.
    """

    @cached_property
    def agent(self) -> DataLoader[uuid.UUID, Agent]:
        return _loader(agents.agents_by_ids)

    @cached_property
    def history(self) -> DataLoader[uuid.UUID, list[dict[str, Any]]]:
        return _loader(messages.histories_for, default=[])

    @cached_property
    def session_memory(self) -> DataLoader[uuid.UUID, list[MemoryEntry]]:
        return _loader(memory.session_memory_for, default=[])

    @cached_property
    def message(self) -> DataLoader[uuid.UUID, Message | None]:
        return _loader(messages.messages_by_ids)

    @cached_property
    def active_run(self) -> DataLoader[uuid.UUID, Run | None]:
        return _loader(runs.active_runs_for)

    @cached_property
    def session_stats(self) -> DataLoader[uuid.UUID, stats.SessionStats]:
        return _loader(stats.session_stats_for)

    @cached_property
    def message_page(self) -> DataLoader[tuple[uuid.UUID, messages.PageArgs], Any]:
        # Message pages of many sessions with the same arguments, in one query per argument set.
        return DataLoader(load_fn=self._message_pages)

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def _message_pages(self, keys: Sequence[tuple[uuid.UUID, messages.PageArgs]]) -> list[Any]:
        by_args: dict[messages.PageArgs, list[uuid.UUID]] = defaultdict(list)
        for session_id, args in keys:
            by_args[args].append(session_id)
        pages: dict[tuple[uuid.UUID, messages.PageArgs], Any] = {}
        for args, ids in by_args.items():
            for session_id, page in (await messages.pages_for(ids, args, self.limits)).items():
                pages[(session_id, args)] = page
        return [pages[k] for k in keys]


class Context:
    def __init__(self, runtime: Runtime, authorization: str | None, request: Any = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.request = request
        self.authorization = authorization
        self.connection_params: Any = None  # set by strawberry from the WebSocket connection_init
        self._user: User | None = None
        self.loaders = Loaders(runtime.limits)
        # WebSockets only: set by the socket handler, and the slot counted for the user.
        self.close_socket: Callable[[str], Awaitable[None]] | None = None
        self.socket_slot: uuid.UUID | None = None

    async def hold_socket(self, user: User) -> None:
        """Count this socket for its user (TooManyConnections past the limit)."""
        if self.close_socket is not None and self.socket_slot is None:
            self.socket_slot = await self.runtime.connections.open(user.id, self.close_socket)

    async def release_socket(self) -> None:
        if self.socket_slot is not None and self._user is not None:
            slot, self.socket_slot = self.socket_slot, None
            await self.runtime.connections.release(self._user.id, slot)

    async def authenticate(self) -> User:
        if self._user is None:
            self._user = await authenticate(self.authorization, self.settings)
        return self._user

    @property
    def user(self) -> User:
        if self._user is None:
            raise Unauthenticated("send `Authorization: Bearer <token>`")
        return self._user

    def fresh_loaders(self) -> None:
        """Long subscriptions call this per event so no loader serves stale rows."""
        self.loaders = Loaders(self.runtime.limits)
