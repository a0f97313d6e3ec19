"""Small GraphQL helpers shared by the tests (everything goes through the public API)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

SESSION_FIELDS = """
    id externalId title state stateVersion metadata isActive createdAt updatedAt lastActivityAt
    messageCount agent { name }
"""

MESSAGE_FIELDS = """
    id sessionId sequence role content toolCalls { id name arguments } toolCallId toolName
    runId model usage { requests inputTokens outputTokens totalTokens } metadata createdAt
"""

CREATE_SESSION = f"""
mutation($input: CreateSessionInput!) {{ createSession(input: $input) {{ {SESSION_FIELDS} }} }}
"""

ADD_MESSAGES = f"""
mutation($sid: UUID!, $messages: [MessageInput!]!) {{
  addMessages(sessionId: $sid, messages: $messages) {{ {MESSAGE_FIELDS} }}
}}
"""

GET_SESSION = f"query($id: UUID!) {{ session(id: $id) {{ {SESSION_FIELDS} }} }}"


async def create_session(api: Api, **fields: Any) -> dict[str, Any]:
    data = await api.gql(CREATE_SESSION, {"input": fields})
    session: dict[str, Any] = data["createSession"]
    return session


async def add_messages(api: Api, session_id: str, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    data = await api.gql(ADD_MESSAGES, {"sid": session_id, "messages": list(messages)})
    added: list[dict[str, Any]] = data["addMessages"]
    return added


def user(content: str) -> dict[str, Any]:
    return {"role": "USER", "content": content}


def assistant(content: str = "", *calls: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "ASSISTANT", "content": content}
    if calls:
        msg["toolCalls"] = list(calls)
    return msg


def tool(call_id: str, content: str, name: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "TOOL", "content": content, "toolCallId": call_id}
    if name is not None:
        msg["toolName"] = name
    return msg


async def find_session(api: Api, session_id: str) -> dict[str, Any] | None:
    """The session, or None where the user sees none of that id."""
    session: dict[str, Any] | None = (await api.gql(GET_SESSION, {"id": session_id}))["session"]
    return session


async def get_session(api: Api, session_id: str) -> dict[str, Any]:
    """A session the user must see."""
    session = await find_session(api, session_id)
    assert session is not None, f"session {session_id} not found"
    return session
