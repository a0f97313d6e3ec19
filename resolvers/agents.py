from __future__ import annotations

from resolvers import mapping
from resolvers.context import Context
from schema.agent import Agent
from schema.inputs import AgentInput, AgentUpdateInput
from schema.tools import McpServerInput
from services import agents, tools


async def agent_list(ctx: Context) -> list[Agent]:
    return [mapping.agent(a) for a in await agents.list_agents()]


async def agent(ctx: Context, name: str) -> Agent | None:
    found = await agents.get_agent(name)
    return mapping.agent(found) if found is not None else None


async def create(ctx: Context, input: AgentInput) -> Agent:
    changes = agents.AgentChanges(
        instructions=input.instructions,
        memory_enabled=input.memory_enabled,
        history_limit=input.history_limit,
        mcp_servers=_servers(input.mcp_servers),
        approval_required=input.approval_required,
    )
    created = await agents.create_agent(ctx.user, input.name, input.model, changes, ctx.runtime.tools)
    return mapping.agent(created)


async def update(ctx: Context, name: str, input: AgentUpdateInput) -> Agent:
    changes = agents.AgentChanges(
        model=input.model,
        instructions=input.instructions,
        memory_enabled=input.memory_enabled,
        history_limit=input.history_limit,
        mcp_servers=_servers(input.mcp_servers),
        approval_required=input.approval_required,
    )
    return mapping.agent(await agents.update_agent(ctx.user, name, changes, ctx.runtime.tools))


def _servers(given: list[McpServerInput] | None) -> list[tools.McpServer] | None:
    if given is None:
        return None
    return [tools.check_server(s.url, s.headers, s.allowed_tools, s.tool_prefix) for s in given]
