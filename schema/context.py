"""What the schema's nested fields ask of the request: a protocol the resolvers implement.

Types here hold data; a field that needs more (a session's messages, a run's reply) asks the
request context for it through :class:`Resolve`. ``resolvers.context.Context`` implements it
with the services and per-request DataLoaders, so the schema imports no resolver, service
internals, ORM or driver.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

import strawberry
from strawberry.scalars import JSON

if TYPE_CHECKING:
    from schema.agent import Agent
    from schema.enums import MessageRole
    from schema.memory import MemoryEntry
    from schema.message import Message, MessageConnection
    from schema.run import Run
    from schema.stats import SessionStats
    from schema.tools import ToolInfo


class Resolve(Protocol):
    async def agent_by_id(self, agent_id: uuid.UUID) -> Agent: ...

    async def session_messages(
        self,
        session_id: uuid.UUID,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
        roles: list[MessageRole] | None,
    ) -> MessageConnection: ...

    async def session_stats(self, session_id: uuid.UUID) -> SessionStats: ...

    async def session_memory(self, session_id: uuid.UUID) -> list[MemoryEntry]: ...

    async def active_run(self, session_id: uuid.UUID) -> Run | None: ...

    async def history(self, session_id: uuid.UUID) -> JSON: ...

    async def message_by_id(self, message_id: uuid.UUID | None) -> Message | None: ...

    async def agent_tools(self, agent_id: uuid.UUID) -> list[ToolInfo]: ...

    async def siblings(self, session_id: uuid.UUID, parent_id: uuid.UUID | None) -> list[uuid.UUID]: ...


Info = strawberry.Info[Resolve, None]
