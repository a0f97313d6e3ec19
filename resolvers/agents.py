from __future__ import annotations

import strawberry

from models import Agent
from resolvers.context import Context
from schema.inputs import AgentInput, AgentUpdateInput
from services import agents

Info = strawberry.Info[Context, None]


async def agent_list(info: Info) -> list[Agent]:
    return await agents.list_agents()


async def agent(info: Info, name: str) -> Agent | None:
    return await agents.get_agent(name)


async def create(info: Info, input: AgentInput) -> Agent:
    changes = agents.AgentChanges(
        instructions=input.instructions,
        memory_enabled=input.memory_enabled,
        history_limit=input.history_limit,
    )
    return await agents.create_agent(info.context.user, input.name, input.model, changes)


async def update(info: Info, name: str, input: AgentUpdateInput) -> Agent:
    changes = agents.AgentChanges(
        model=input.model,
        instructions=input.instructions,
        memory_enabled=input.memory_enabled,
        history_limit=input.history_limit,
    )
    return await agents.update_agent(info.context.user, name, changes)
