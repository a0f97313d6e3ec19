from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from models import Run as RunRow
from resolvers import runs as resolve
from schema.enums import RunStatus
from schema.message import ErrorInfo, Message, Usage


@strawberry.type
class Run:
    id: uuid.UUID
    session_id: uuid.UUID
    status: RunStatus
    model: str
    started_at: datetime
    finished_at: datetime | None
    cost: float | None

    @strawberry.field
    def usage(self, root: strawberry.Parent[RunRow]) -> Usage | None:
        return Usage.of(root)

    @strawberry.field
    def error(self, root: strawberry.Parent[RunRow]) -> ErrorInfo | None:
        if root.error_code is None:
            return None
        return ErrorInfo(code=root.error_code, message=root.error_message or "")

    @strawberry.field
    async def user_message(self, root: strawberry.Parent[RunRow], info: strawberry.Info) -> Message | None:
        return await resolve.message(info, root.user_message_id)  # type: ignore[return-value]

    @strawberry.field(description="the final ASSISTANT message")
    async def reply(self, root: strawberry.Parent[RunRow], info: strawberry.Info) -> Message | None:
        return await resolve.message(info, root.reply_id)  # type: ignore[return-value]
