from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from schema.context import Info
from schema.fields import described_field
from schema.tools import McpServer, ToolInfo


@strawberry.type
class Agent:
    id: uuid.UUID
    name: str = strawberry.field(description="unique")
    model: str = strawberry.field(description="pydantic-ai model string")
    instructions: str
    memory_enabled: bool = strawberry.field(description="the model gets the memory tools")
    history_limit: int = strawberry.field(description="most messages of history sent to the model")
    created_at: datetime
    mcp_servers: list[McpServer]
    approval_required: list[str] = strawberry.field(
        description='tool names (after toolPrefix), save_memory / delete_memory included; "*" = every tool'
    )

    @described_field("what the model can call now: memory tools and each server's tools")
    async def tools(self, info: Info) -> list[ToolInfo]:
        return await info.context.agent_tools(self.id)
