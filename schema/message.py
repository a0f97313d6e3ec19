from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from models import Message as MessageRow
from schema.enums import MessageRole
from schema.pagination import PageInfo
from services.pagination import Page


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

    @classmethod
    def of(cls, row: Any) -> Usage | None:
        if row.input_tokens is None and row.output_tokens is None:
            return None
        return cls(
            requests=row.requests or 0,
            input_tokens=row.input_tokens or 0,
            output_tokens=row.output_tokens or 0,
        )


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

    @strawberry.field
    def tool_calls(self, root: strawberry.Parent[MessageRow]) -> list[ToolCall]:
        return [
            ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments")) for c in root.tool_calls or []
        ]

    @strawberry.field
    def usage(self, root: strawberry.Parent[MessageRow]) -> Usage | None:
        return Usage.of(root) if root.role == "assistant" else None


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type
class MessageConnection:
    @strawberry.field
    def edges(self, root: strawberry.Parent[Page[MessageRow]]) -> list[MessageEdge]:
        return [
            MessageEdge(cursor=c, node=m)  # type: ignore[arg-type]
            for c, m in zip(root.cursors, root.items, strict=True)
        ]

    @strawberry.field
    def page_info(self, root: strawberry.Parent[Page[MessageRow]]) -> PageInfo:
        return PageInfo.of(root)

    @strawberry.field
    def total_count(self, root: strawberry.Parent[Page[MessageRow]]) -> int:
        return root.total_count
