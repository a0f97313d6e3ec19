"""Helpers of the attachment tests: queries, a model that reports the parts it received, turns."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    TextContent,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo

from tests.conftest import Api
from tests.scripted import Recorder, register

ATTACHMENT = "id filename mediaType size url createdAt"
PAYLOAD = f"""run {{ id status error {{ code message }} }}
  userMessage {{ id content attachments {{ {ATTACHMENT} }} }}
  reply {{ id content }}"""
SEND = f"""mutation($s: UUID!, $c: String!, $a: [UUID!]) {{
  sendMessage(sessionId: $s, content: $c, attachments: $a) {{ {PAYLOAD} }} }}"""
EDIT = f"""mutation($m: UUID!, $c: String!, $a: [UUID!]) {{
  editMessage(messageId: $m, content: $c, attachments: $a) {{ {PAYLOAD} }} }}"""
REGENERATE = f"mutation($m: UUID!) {{ regenerate(messageId: $m) {{ {PAYLOAD} }} }}"
VIEW = f"""query($s: UUID!) {{ session(id: $s) {{ messageCount history
  messages(first: 50) {{ edges {{ node {{ role content attachments {{ {ATTACHMENT} }} }} }} }} }} }}"""
FORK = "mutation($m: UUID!) { forkSession(messageId: $m) { id } }"
DELETE = "mutation($s: UUID!) { deleteSession(id: $s) }"
CLEAR = "mutation($s: UUID!) { clearSessionHistory(id: $s) { messageCount } }"


def prompt_items(messages: list[ModelMessage]) -> list[Any]:
    """The items of the newest user prompt the model was sent."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    return [part.content] if isinstance(part.content, str) else list(part.content)
    return []


def describe(item: Any) -> str:
    if isinstance(item, str):
        return f"text {item}"
    if isinstance(item, BinaryContent):
        return f"binary {item.media_type} {len(item.data)} {hashlib.sha256(item.data).hexdigest()[:12]}"
    if isinstance(item, TextContent):
        return f"file {item.content.splitlines()[0]}"
    return type(item).__name__


async def reporter(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    """A model that says which parts its newest user prompt had."""
    yield " | ".join(describe(i) for i in prompt_items(messages))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


async def agent_for(admin: Api, recorder: Recorder) -> str:
    name = f"att-{uuid.uuid4().hex[:8]}"
    model = register(admin.rt.models, reporter, recorder)
    await admin.gql(
        "mutation($i: AgentInput!) { createAgent(input: $i) { name } }",
        {"i": {"name": name, "model": model, "memoryEnabled": False}},
    )
    return name


async def new_session(api: Api, agent: str | None = None) -> str:
    data = await api.gql(
        "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }", {"i": {"agentName": agent}}
    )
    session_id: str = data["createSession"]["id"]
    return session_id


async def send(api: Api, session: str, content: str, *attachments: str) -> dict[str, Any]:
    data = await api.gql(SEND, {"s": session, "c": content, "a": list(attachments)})
    turn: dict[str, Any] = data["sendMessage"]
    assert turn["run"]["status"] == "COMPLETED", turn["run"]
    return turn


def dump(messages: list[ModelMessage]) -> list[dict[str, Any]]:
    dumped: list[dict[str, Any]] = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return dumped
