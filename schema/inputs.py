from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.enums import MessageRole
from schema.tools import McpServerInput


@strawberry.input
class SessionFilter:
    agent_name: str | None = None
    is_active: bool | None = None
    updated_after: datetime | None = None
    title_contains: str | None = None


@strawberry.input
class CreateSessionInput:
    agent_name: str | None = None
    external_id: str | None = None
    title: str | None = None
    state: JSON | None = None
    metadata: JSON | None = None


@strawberry.input
class UpdateSessionInput:
    title: str | None = None
    metadata: JSON | None = None
    is_active: bool | None = None


@strawberry.input
class ToolCallInput:
    id: str
    name: str
    arguments: JSON | None = None


@strawberry.input
class MessageInput:
    role: MessageRole
    content: str | None = None
    tool_calls: list[ToolCallInput] | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    metadata: JSON | None = None


@strawberry.input
class AgentInput:
    name: str
    model: str
    instructions: str | None = None
    memory_enabled: bool | None = None
    history_limit: int | None = None
    mcp_servers: list[McpServerInput] | None = None
    approval_required: list[str] | None = None


@strawberry.input
class AgentUpdateInput:
    model: str | None = None
    instructions: str | None = None
    memory_enabled: bool | None = None
    history_limit: int | None = None
    mcp_servers: list[McpServerInput] | None = None
    approval_required: list[str] | None = None
