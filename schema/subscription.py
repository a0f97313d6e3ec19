from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry
from strawberry.scalars import JSON

from resolvers import subscriptions
from schema.events import AgentEvent


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def chat(
        self,
        info: strawberry.Info,
        session_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        async for event in subscriptions.chat(info, session_id, content, metadata, idempotency_key):
            yield event  # type: ignore[misc]

    @strawberry.subscription
    async def session_events(
        self, info: strawberry.Info, session_id: uuid.UUID, after_sequence: int | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        async for event in subscriptions.session_events(info, session_id, after_sequence):
            yield event  # type: ignore[misc]
