"""Agents: shared by everyone, changed only by admins."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from models import Agent, User
from services.errors import BadInput, Conflict, Forbidden, NotFound
from services.settings import Settings

DEFAULT_AGENT = "assistant"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_HISTORY = 10_000
_MAX_REQUESTS = 1_000


@dataclass
class AgentChanges:
    model: str | None = None
    instructions: str | None = None
    memory_enabled: bool | None = None
    history_limit: int | None = None
    max_requests_per_run: int | None = None


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("only admins create or change agents")


def _check(changes: AgentChanges) -> None:
    if changes.model is not None:
        _check_model(changes.model)
    if changes.history_limit is not None and not 1 <= changes.history_limit <= _MAX_HISTORY:
        raise BadInput(f"historyLimit must be between 1 and {_MAX_HISTORY}")
    if changes.max_requests_per_run is not None and not 1 <= changes.max_requests_per_run <= _MAX_REQUESTS:
        raise BadInput(f"maxRequestsPerRun must be between 1 and {_MAX_REQUESTS}")
    if changes.instructions is not None and len(changes.instructions) > 100_000:
        raise BadInput("instructions are limited to 100000 characters")


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


async def create_agent(user: User, name: str, model: str, changes: AgentChanges) -> Agent:
    _require_admin(user)
    if not _NAME.match(name):
        raise BadInput("an agent name has 1-100 letters, digits, '_', '.' or '-'")
    changes.model = model
    _check(changes)
    fields: dict[str, Any] = {"name": name, "model": model.strip()}
    if changes.instructions is not None:
        fields["instructions"] = changes.instructions
    if changes.memory_enabled is not None:
        fields["memory_enabled"] = changes.memory_enabled
    if changes.history_limit is not None:
        fields["history_limit"] = changes.history_limit
    if changes.max_requests_per_run is not None:
        fields["max_requests_per_run"] = changes.max_requests_per_run
    try:
        return await Agent.create(**fields)
    except IntegrityError as exc:
        raise Conflict(f"an agent named {name!r} already exists") from exc


async def update_agent(user: User, name: str, changes: AgentChanges) -> Agent:
    _require_admin(user)
    _check(changes)
    agent = await Agent.get_or_none(name=name)
    if agent is None:
        raise NotFound.of("agent", repr(name))
    changed: list[str] = []
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
    if changes.max_requests_per_run is not None:
        agent.max_requests_per_run = changes.max_requests_per_run
        changed.append("max_requests_per_run")
    if changed:  # only these columns: a concurrent edit of the others is kept
        await agent.save(update_fields=[*changed, "updated_at"])
    return agent


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
