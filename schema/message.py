from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.attachment import Attachment
from schema.context import Info
from schema.enums import MessageRole
from schema.fields import described_field
from schema.pagination import PageInfo


@strawberry.type
class ToolCall:
    id: str
    name: str
    arguments: JSON | None


@strawberry.type
class Usage:
    requests: int
    input_tokens: int
    output_tokens: int

    @strawberry.field
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@strawberry.type
class ErrorInfo:
    code: str
    message: str


@strawberry.type
class Message:
    id: uuid.UUID
    session_id: uuid.UUID
    sequence: int = strawberry.field(description="per session: strictly increasing, never reused")
    role: MessageRole
    content: str
    tool_call_id: str | None
    tool_name: str | None
    run_id: uuid.UUID | None
    model: str | None
    cost: float | None = strawberry.field(description="USD, where the price is known")
    processing_time_ms: int | None
    metadata: JSON
    created_at: datetime
    tool_calls: list[ToolCall]
    usage: Usage | None
    parent_id: uuid.UUID | None = strawberry.field(description="the message it follows; null for the first")

    @described_field("all messages with the same parent, oldest first, itself included")
    async def sibling_ids(self, info: Info) -> list[uuid.UUID]:
        return await info.context.siblings(self.session_id, self.parent_id)

    @described_field("the files sent with it (USER messages), in the order they were given")
    async def attachments(self, info: Info) -> list[Attachment]:
        return await info.context.message_attachments(self.id)

    @described_field("its place in siblingIds (0-based)")
    async def sibling_index(self, info: Info) -> int:
        ids = await info.context.siblings(self.session_id, self.parent_id)
        return ids.index(self.id) if self.id in ids else 0  # gone meanwhile (history cleared)


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo
    total_count: int
