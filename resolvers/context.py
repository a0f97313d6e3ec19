"""The per-request context: the caller, the runtime and fresh DataLoaders.

It implements ``schema.context.Resolve``: what the schema's nested fields ask for (a session's
agent, messages, stats, memory ...) comes from here, batched by DataLoaders and mapped to
GraphQL types.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from models import Role, User
from resolvers import mapping
from schema.agent import Agent
from schema.enums import MessageRole
from schema.memory import MemoryEntry
from schema.message import Message, MessageConnection
from schema.run import Run
from schema.stats import SessionStats
from schema.tools import ToolInfo
from services import agents, branches, memory, messages, runs, stats
from services.errors import NotFound, Unauthenticated
from services.limits import Limits
from services.runtime import Runtime
from services.tools import memory_tool_infos
from services.transcript import message_from_model
from services.users import authenticate

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
W = TypeVar("W")


def _loader(
    fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]], convert: Callable[[V], W], default: W
) -> DataLoader[K, W]:
    async def load(keys: Sequence[K]) -> list[W]:
        found = await fetch(list(keys))
        return [convert(found[k]) if k in found else default for k in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """One set per request (and per event on long subscriptions), so nothing is cached stale.

    Each loader is made on first use: a subscription event that needs none costs nothing.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    @cached_property
    def agent(self) -> DataLoader[uuid.UUID, Agent | None]:
        return _loader(agents.agents_by_ids, mapping.agent, None)

    @cached_property
    def history(self) -> DataLoader[uuid.UUID, list[dict[str, Any]]]:
        return _loader(messages.histories_for, lambda h: h, [])

    @cached_property
    def session_memory(self) -> DataLoader[uuid.UUID, list[MemoryEntry]]:
        return _loader(memory.session_memory_for, lambda rows: [mapping.memory_entry(r) for r in rows], [])

    @cached_property
    def message(self) -> DataLoader[uuid.UUID, Message | None]:
        return _loader(messages.messages_by_ids, lambda m: mapping.message(message_from_model(m)), None)

    @cached_property
    def siblings(self) -> DataLoader[tuple[uuid.UUID, uuid.UUID | None], list[uuid.UUID]]:
        return _loader(branches.siblings_for, lambda ids: ids, [])

    @cached_property
    def active_run(self) -> DataLoader[uuid.UUID, Run | None]:
        return _loader(runs.active_runs_for, mapping.run, None)

    @cached_property
    def session_stats(self) -> DataLoader[uuid.UUID, SessionStats | None]:
        return _loader(stats.session_stats_for, mapping.session_stats, None)

    @cached_property
    def message_page(self) -> DataLoader[tuple[uuid.UUID, messages.PageArgs], MessageConnection]:
        # Message pages of many sessions with the same arguments, in one query per argument set.
        return DataLoader(load_fn=self._message_pages)

    async def _message_pages(
        self, keys: Sequence[tuple[uuid.UUID, messages.PageArgs]]
    ) -> list[MessageConnection]:
        by_args: dict[messages.PageArgs, list[uuid.UUID]] = defaultdict(list)
        for session_id, args in keys:
            by_args[args].append(session_id)
        pages: dict[tuple[uuid.UUID, messages.PageArgs], MessageConnection] = {}
        for args, ids in by_args.items():
            for session_id, page in (await messages.pages_for(ids, args, self.limits)).items():
                pages[(session_id, args)] = mapping.message_page(page)
        return [pages[k] for k in keys]


def page_args(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    roles: list[MessageRole] | None,
) -> messages.PageArgs:
    role_values = tuple(sorted({Role(r.value) for r in roles})) if roles else None
    return messages.PageArgs(first=first, after=after, last=last, before=before, roles=role_values)


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

    async def hold_socket(self, user: User) -> None:
        """Count this socket for its user (TooManyConnections past the limit)."""
        if self.close_socket is not None and self.socket_slot is None:
            self.socket_slot = await self.runtime.connections.open(user.id, self.close_socket)

    async def release_socket(self) -> None:
        if self.socket_slot is not None and self._user is not None:
            slot, self.socket_slot = self.socket_slot, None
            await self.runtime.connections.release(self._user.id, slot)

    # --- schema.context.Resolve ------------------------------------------------------------

    async def agent_by_id(self, agent_id: uuid.UUID) -> Agent:
        found = await self.loaders.agent.load(agent_id)
        if found is None:
            raise NotFound.of("agent", agent_id)
        return found

    async def session_messages(
        self,
        session_id: uuid.UUID,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
        roles: list[MessageRole] | None,
    ) -> MessageConnection:
        args = page_args(first, after, last, before, roles)
        args.resolved(self.runtime.limits)  # reject bad arguments before batching
        return await self.loaders.message_page.load((session_id, args))

    async def session_stats(self, session_id: uuid.UUID) -> SessionStats:
        found = await self.loaders.session_stats.load(session_id)
        if found is None:  # deleted since it was read in this request
            raise NotFound.of("session", session_id)
        return found

    async def session_memory(self, session_id: uuid.UUID) -> list[MemoryEntry]:
        return await self.loaders.session_memory.load(session_id)

    async def active_run(self, session_id: uuid.UUID) -> Run | None:
        return await self.loaders.active_run.load(session_id)

    async def history(self, session_id: uuid.UUID) -> JSON:
        return JSON(await self.loaders.history.load(session_id))

    async def message_by_id(self, message_id: uuid.UUID | None) -> Message | None:
        if message_id is None:
            return None
        return await self.loaders.message.load(message_id)

    async def siblings(self, session_id: uuid.UUID, parent_id: uuid.UUID | None) -> list[uuid.UUID]:
        return await self.loaders.siblings.load((session_id, parent_id))

    async def agent_tools(self, agent_id: uuid.UUID) -> list[ToolInfo]:
        found = (await agents.agents_by_ids([agent_id])).get(agent_id)
        if found is None:
            raise NotFound.of("agent", agent_id)
        memory_tools = memory_tool_infos(self.runtime.agents.memory)
        return [
            mapping.tool_info(t) for t in await agents.agent_tools(found, self.runtime.tools, memory_tools)
        ]
