"""Agents: shared by everyone, created and changed by admins only."""

from __future__ import annotations

import uuid

from tests.conftest import Api

AGENT_FIELDS = "id name model instructions memoryEnabled historyLimit createdAt"
CREATE = f"mutation($input: AgentInput!) {{ createAgent(input: $input) {{ {AGENT_FIELDS} }} }}"
UPDATE = (
    f"mutation($name: String!, $input: AgentUpdateInput!) {{ updateAgent(name: $name, input: $input) "
    f"{{ {AGENT_FIELDS} }} }}"
)
GET = f"query($name: String!) {{ agent(name: $name) {{ {AGENT_FIELDS} }} }}"


def fresh_name() -> str:
    return f"agent-{uuid.uuid4().hex[:8]}"


async def test_default_agent_exists(api: Api) -> None:
    agent = (await api.gql(GET, {"name": "assistant"}))["agent"]
    assert agent["model"] == "echo"
    assert agent["memoryEnabled"] is True and agent["historyLimit"] == 100
    assert agent["instructions"]
    names = [a["name"] for a in (await api.gql("{ agents { name } }"))["agents"]]
    assert "assistant" in names
    assert (await api.gql(GET, {"name": "no-such-agent"}))["agent"] is None


async def test_admin_creates_and_updates_agents(admin: Api, api: Api) -> None:
    name = fresh_name()
    created = (await admin.gql(CREATE, {"input": {"name": name, "model": "openai:gpt-4o-mini"}}))[
        "createAgent"
    ]
    assert (created["name"], created["model"], created["memoryEnabled"], created["historyLimit"]) == (
        name,
        "openai:gpt-4o-mini",
        True,
        100,
    )
    assert created["instructions"] == ""

    full = fresh_name()
    made = (
        await admin.gql(
            CREATE,
            {
                "input": {
                    "name": full,
                    "model": "echo",
                    "instructions": "Be terse.",
                    "memoryEnabled": False,
                    "historyLimit": 12,
                }
            },
        )
    )["createAgent"]
    assert (made["instructions"], made["memoryEnabled"], made["historyLimit"]) == ("Be terse.", False, 12)

    # Agents are shared: every user sees them.
    assert (await api.gql(GET, {"name": full}))["agent"] == made
    assert {name, full} <= {a["name"] for a in (await api.gql("{ agents { name } }"))["agents"]}

    updated = (await admin.gql(UPDATE, {"name": full, "input": {"historyLimit": 50, "model": "test"}}))[
        "updateAgent"
    ]
    assert (updated["historyLimit"], updated["model"], updated["instructions"], updated["memoryEnabled"]) == (
        50,
        "test",
        "Be terse.",
        False,
    )
    assert updated["id"] == made["id"] and updated["createdAt"] == made["createdAt"]
    assert (await api.gql(GET, {"name": full}))["agent"] == updated


async def test_non_admin_is_forbidden(api: Api, admin: Api) -> None:
    name = fresh_name()
    assert await api.code(CREATE, {"input": {"name": name, "model": "echo"}}) == "FORBIDDEN"
    assert (await api.gql(GET, {"name": name}))["agent"] is None
    await admin.gql(CREATE, {"input": {"name": name, "model": "echo"}})
    assert await api.code(UPDATE, {"name": name, "input": {"model": "test"}}) == "FORBIDDEN"
    assert await api.code(UPDATE, {"name": "assistant", "input": {"instructions": "pwned"}}) == "FORBIDDEN"
    assert (await api.gql(GET, {"name": name}))["agent"]["model"] == "echo"


async def test_duplicate_agent_name_is_conflict(admin: Api) -> None:
    name = fresh_name()
    await admin.gql(CREATE, {"input": {"name": name, "model": "echo"}})
    assert await admin.code(CREATE, {"input": {"name": name, "model": "test"}}) == "CONFLICT"
    assert await admin.code(CREATE, {"input": {"name": "assistant", "model": "echo"}}) == "CONFLICT"


async def test_bad_agent_input(admin: Api) -> None:
    bad = [
        {"name": fresh_name(), "model": "not a model"},
        {"name": fresh_name(), "model": ""},
        {"name": fresh_name(), "model": "gpt4"},
        {"name": fresh_name(), "model": "echo", "historyLimit": 0},
        {"name": fresh_name(), "model": "echo", "historyLimit": -5},
        {"name": "", "model": "echo"},
        {"name": "has space", "model": "echo"},
        {"name": "x" * 101, "model": "echo"},
    ]
    for agent_input in bad:
        assert await admin.code(CREATE, {"input": agent_input}) == "BAD_USER_INPUT", agent_input
    name = fresh_name()
    await admin.gql(CREATE, {"input": {"name": name, "model": "echo"}})
    assert await admin.code(UPDATE, {"name": name, "input": {"historyLimit": 0}}) == "BAD_USER_INPUT"
    assert await admin.code(UPDATE, {"name": name, "input": {"model": "nope"}}) == "BAD_USER_INPUT"
    assert await admin.code(UPDATE, {"name": "no-such-agent", "input": {"model": "echo"}}) == "NOT_FOUND"
