"""Agents: shared by everyone, changed only by admins."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from tortoise.exceptions import IntegrityError

from models import Agent, User
from services.errors import BadInput, Conflict, Forbidden, NotFound
from services.settings import Settings
from services.tools import MEMORY_TOOLS, McpServer, Toolbox, ToolInfo, check_approval_names, check_servers

DEFAULT_AGENT = "assistant"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_HISTORY = 10_000


@dataclass
class AgentChanges:
    model: str | None = None
    instructions: str | None = None
    memory_enabled: bool | None = None
    history_limit: int | None = None
    mcp_servers: list[McpServer] | None = None
    approval_required: list[str] | None = None


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("only admins create or change agents")


def _check(changes: AgentChanges) -> None:
    if changes.model is not None:
        _check_model(changes.model)
    if changes.history_limit is not None and not 1 <= changes.history_limit <= _MAX_HISTORY:
        raise BadInput(f"historyLimit must be between 1 and {_MAX_HISTORY}")
    if changes.instructions is not None and len(changes.instructions) > 100_000:
        raise BadInput("instructions are limited to 100000 characters")
    if changes.mcp_servers is not None:
        check_servers(changes.mcp_servers)
    if changes.approval_required is not None:
        changes.approval_required = check_approval_names(changes.approval_required)


async def _check_tool_names(toolbox: Toolbox, servers: list[McpServer], memory_enabled: bool) -> None:
    """Tools of several servers merge: a name given twice is refused (servers that do not
    answer now are not checked, so a server that is down does not block saving)."""
    seen: dict[str, str] = {name: "the memory tools" for name in MEMORY_TOOLS} if memory_enabled else {}
    for server in servers:
        listed = await toolbox.server_tools(server)
        for tool in listed or []:
            if tool.name in seen:
                raise BadInput(
                    f"tool {tool.name!r} of {server.url} clashes with {seen[tool.name]}: "
                    "give one of the servers a toolPrefix"
                )
            seen[tool.name] = server.url


def _check_model(model: str) -> None:
    """Accept `echo`, `test` and any `provider:name` string pydantic-ai understands."""
    model = model.strip()
    if not model or len(model) > 200:
        raise BadInput("model must be a pydantic-ai model string such as 'openai:gpt-4o-mini'")
    if model in {"echo", "test"}:
        return
    if ":" not in model:
        raise BadInput(
            f"unknown model {model!r}: use 'echo' or a pydantic-ai model string "
            "such as 'openai:gpt-4o-mini' or 'openai-chat:llama3'"
        )


async def list_agents() -> list[Agent]:
    return await Agent.all().order_by("name")


async def get_agent(name: str) -> Agent | None:
    return await Agent.get_or_none(name=name)


async def agent_for_session(name: str | None) -> Agent:
    agent = await Agent.get_or_none(name=name or DEFAULT_AGENT)
    if agent is None:
        raise NotFound.of("agent", repr(name or DEFAULT_AGENT))
    return agent


async def agents_by_ids(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Agent]:
    return {a.id: a for a in await Agent.filter(id__in=list(set(ids)))}


async def create_agent(user: User, name: str, model: str, changes: AgentChanges, toolbox: Toolbox) -> Agent:
    _require_admin(user)
    if not _NAME.match(name):
        raise BadInput("an agent name has 1-100 letters, digits, '_', '.' or '-'")
    changes.model = model
    _check(changes)
    memory_enabled = changes.memory_enabled if changes.memory_enabled is not None else True
    await _check_tool_names(toolbox, changes.mcp_servers or [], memory_enabled)
    fields: dict[str, Any] = {"name": name, "model": model.strip()}
    if changes.mcp_servers is not None:
        fields["mcp_servers"] = [s.stored() for s in changes.mcp_servers]
    if changes.approval_required is not None:
        fields["approval_required"] = changes.approval_required
    if changes.instructions is not None:
        fields["instructions"] = changes.instructions
    if changes.memory_enabled is not None:
        fields["memory_enabled"] = changes.memory_enabled
    if changes.history_limit is not None:
        fields["history_limit"] = changes.history_limit
    try:
        return await Agent.create(**fields)
    except IntegrityError as exc:
        raise Conflict(f"an agent named {name!r} already exists") from exc


async def update_agent(user: User, name: str, changes: AgentChanges, toolbox: Toolbox) -> Agent:
    _require_admin(user)
    _check(changes)
    agent = await Agent.get_or_none(name=name)
    if agent is None:
        raise NotFound.of("agent", repr(name))
    changed: list[str] = []
    if changes.mcp_servers is not None or changes.memory_enabled is not None:
        servers = changes.mcp_servers if changes.mcp_servers is not None else servers_of(agent)
        memory_enabled = (
            changes.memory_enabled if changes.memory_enabled is not None else agent.memory_enabled
        )
        await _check_tool_names(toolbox, servers, memory_enabled)
    if changes.mcp_servers is not None:
        agent.mcp_servers = [s.stored() for s in changes.mcp_servers]
        changed.append("mcp_servers")
    if changes.approval_required is not None:
        agent.approval_required = changes.approval_required
        changed.append("approval_required")
    if changes.model is not None:
        agent.model = changes.model.strip()
        changed.append("model")
    if changes.instructions is not None:
        agent.instructions = changes.instructions
        changed.append("instructions")
    if changes.memory_enabled is not None:
        agent.memory_enabled = changes.memory_enabled
        changed.append("memory_enabled")
    if changes.history_limit is not None:
        agent.history_limit = changes.history_limit
        changed.append("history_limit")
    if changed:  # only these columns: a concurrent edit of the others is kept
        await agent.save(update_fields=[*changed, "updated_at"])
    return agent


def servers_of(agent: Agent) -> list[McpServer]:
    return [McpServer.parse(raw) for raw in agent.mcp_servers]


async def agent_tools(agent: Agent, toolbox: Toolbox, memory_tools: list[ToolInfo]) -> list[ToolInfo]:
    """What the model of this agent can call now (a server that does not answer lists nothing)."""
    names = agent.approval_required
    found = list(memory_tools) if agent.memory_enabled else []
    for server in servers_of(agent):
        found.extend(await toolbox.server_tools(server) or [])
    return [replace(t, requires_approval="*" in names or t.name in names) for t in found]


async def ensure_default_agent(settings: Settings) -> Agent:
    """Create ``assistant`` from PARLEY_MODEL / PARLEY_INSTRUCTIONS, or follow their changes."""
    agent, created = await Agent.get_or_create(
        name=DEFAULT_AGENT,
        defaults={"model": settings.model, "instructions": settings.instructions},
    )
    if not created and (agent.model, agent.instructions) != (
        settings.model,
        settings.instructions,
    ):
        agent.model = settings.model
        agent.instructions = settings.instructions
        await agent.save(update_fields=["model", "instructions", "updated_at"])
    return agent
