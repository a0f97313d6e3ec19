from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.enums import MessageRole
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


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo
    total_count: int
