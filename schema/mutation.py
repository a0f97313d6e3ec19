from __future__ import annotations

import uuid

import strawberry
from strawberry.scalars import JSON

from resolvers import agents, memory, runs, sessions, stats
from resolvers import messages as message_resolvers
from schema.agent import Agent
from schema.enums import MemoryScope
from schema.inputs import AgentInput, AgentUpdateInput, CreateSessionInput, MessageInput, UpdateSessionInput
from schema.memory import MemoryEntry
from schema.message import Message
from schema.run import Run
from schema.session import Session

Info = strawberry.Info


@strawberry.type
class SendMessagePayload:
    run: Run
    user_message: Message
    reply: Message | None
    messages: list[Message] = strawberry.field(
        description="all the call persisted, the user's first, in sequence order"
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_session(self, info: Info, input: CreateSessionInput) -> Session:
        return await sessions.create(info, input)  # type: ignore[return-value]

    @strawberry.mutation
    async def get_or_create_session(
        self, info: Info, external_id: str, agent_name: str | None = None
    ) -> Session:
        return await sessions.get_or_create(info, external_id, agent_name)  # type: ignore[return-value]

    @strawberry.mutation
    async def update_session(self, info: Info, id: uuid.UUID, input: UpdateSessionInput) -> Session:
        return await sessions.update(info, id, input)  # type: ignore[return-value]

    @strawberry.mutation
    async def update_session_state(
        self,
        info: Info,
        id: uuid.UUID,
        set: JSON | None = None,
        unset: list[str] | None = None,
        expected_version: int | None = None,
    ) -> Session:
        return await sessions.update_state(info, id, set, unset, expected_version)  # type: ignore[return-value]

    @strawberry.mutation
    async def clear_session_history(self, info: Info, id: uuid.UUID) -> Session:
        return await sessions.clear_history(info, id)  # type: ignore[return-value]

    @strawberry.mutation
    async def delete_session(self, info: Info, id: uuid.UUID) -> bool:
        return await sessions.delete(info, id)

    @strawberry.mutation
    async def send_message(
        self,
        info: Info,
        session_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
    ) -> SendMessagePayload:
        return await runs.send_message(info, session_id, content, metadata, idempotency_key)  # type: ignore[return-value]

    @strawberry.mutation
    async def add_messages(
        self, info: Info, session_id: uuid.UUID, messages: list[MessageInput]
    ) -> list[Message]:
        return await message_resolvers.add_messages(info, session_id, messages)  # type: ignore[return-value]

    @strawberry.mutation
    async def cancel_run(self, info: Info, id: uuid.UUID) -> Run:
        return await runs.cancel_run(info, id)  # type: ignore[return-value]

    @strawberry.mutation
    async def save_memory(
        self,
        info: Info,
        key: str,
        value: JSON,
        scope: MemoryScope | None = MemoryScope.USER,
        session_id: uuid.UUID | None = None,
    ) -> MemoryEntry:
        return await memory.save(info, key, value, scope or MemoryScope.USER, session_id)  # type: ignore[return-value]

    @strawberry.mutation
    async def delete_memory(
        self,
        info: Info,
        key: str,
        scope: MemoryScope | None = MemoryScope.USER,
        session_id: uuid.UUID | None = None,
    ) -> bool:
        return await memory.delete(info, key, scope or MemoryScope.USER, session_id)

    @strawberry.mutation
    async def clear_memory(
        self, info: Info, scope: MemoryScope | None = None, session_id: uuid.UUID | None = None
    ) -> int:
        return await memory.clear(info, scope, session_id)

    @strawberry.mutation(description="admin")
    async def create_agent(self, info: Info, input: AgentInput) -> Agent:
        return await agents.create(info, input)  # type: ignore[return-value]

    @strawberry.mutation(description="admin")
    async def update_agent(self, info: Info, name: str, input: AgentUpdateInput) -> Agent:
        return await agents.update(info, name, input)  # type: ignore[return-value]

    @strawberry.mutation(description="admin")
    async def cleanup_sessions(self, info: Info, inactive_days: int) -> int:
        return await stats.cleanup(info, inactive_days)
