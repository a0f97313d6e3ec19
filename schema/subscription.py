from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry
from strawberry.scalars import JSON

from resolvers import subscriptions
from schema.events import AgentEvent


@strawberry.type
class Subscription:
    # The resolvers' generators are returned as they are: one generator less per subscription.
    @strawberry.subscription
    def chat(
        self,
        info: strawberry.Info,
        session_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        return subscriptions.chat(info, session_id, content, metadata, idempotency_key)  # type: ignore[return-value]

    @strawberry.subscription
    def session_events(
        self, info: strawberry.Info, session_id: uuid.UUID, after_sequence: int | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        return subscriptions.session_events(info, session_id, after_sequence)  # type: ignore[return-value]
