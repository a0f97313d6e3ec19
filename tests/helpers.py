"""Small GraphQL helpers shared by the tests (everything goes through the public API)."""

from __future__ import annotations

from typing import Any

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


async def create_session(api: Any, **fields: Any) -> dict[str, Any]:
    data = await api.gql(CREATE_SESSION, {"input": fields})
    return data["createSession"]


async def add_messages(api: Any, session_id: str, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    data = await api.gql(ADD_MESSAGES, {"sid": session_id, "messages": list(messages)})
    return data["addMessages"]


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


async def get_session(api: Any, session_id: str) -> dict[str, Any] | None:
    return (await api.gql(GET_SESSION, {"id": session_id}))["session"]
