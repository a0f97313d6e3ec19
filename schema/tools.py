"""Tools of agents (MCP servers) and the approval of tool calls (API.md section 7)."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON


@strawberry.type
class McpServer:
    url: str
    allowed_tools: list[str] | None
    tool_prefix: str | None
    has_headers: bool = strawberry.field(description="headers are secrets: never returned")


@strawberry.type
class ToolInfo:
    name: str
    description: str | None
    parameters: JSON | None
    requires_approval: bool
    server: str | None = strawberry.field(description="the MCP server's url; null for the memory tools")


@strawberry.type
class ApprovalRequest:
    tool_call_id: str
    tool_name: str
    arguments: JSON | None


@strawberry.input
class McpServerInput:
    url: str
    headers: JSON | None = None
    allowed_tools: list[str] | None = None
    tool_prefix: str | None = None


@strawberry.input
class ApprovalDecision:
    tool_call_id: str
    approve: bool
    message: str | None = strawberry.field(default=None, description="a denial's reason, given to the model")
    arguments: JSON | None = strawberry.field(default=None, description="approve with edited arguments")
