from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from schema.context import Info
from schema.enums import RunStatus
from schema.fields import described_field
from schema.message import ErrorInfo, Message, Usage
from schema.tools import ApprovalRequest


@strawberry.type
class Run:
    id: uuid.UUID
    session_id: uuid.UUID
    status: RunStatus
    model: str
    started_at: datetime
    finished_at: datetime | None
    cost: float | None
    usage: Usage | None
    error: ErrorInfo | None
    pending_approvals: list[ApprovalRequest] = strawberry.field(
        description="while WAITING_APPROVAL: the calls waiting for a decision"
    )
    user_message_id: strawberry.Private[uuid.UUID | None]
    reply_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def user_message(self, info: Info) -> Message | None:
        return await info.context.message_by_id(self.user_message_id)

    @described_field("the final ASSISTANT message")
    async def reply(self, info: Info) -> Message | None:
        return await info.context.message_by_id(self.reply_id)
