from __future__ import annotations

import uuid
from typing import Any, cast

import strawberry

from models import Role
from resolvers.context import Context
from schema.inputs import MessageInput
from services import messages
from services.conversation import IncomingMessage
from services.transcript import MessageRow


async def add_messages(
    info: strawberry.Info[Context, None], session_id: uuid.UUID, items: list[MessageInput]
) -> list[MessageRow]:
    incoming = [
        IncomingMessage(
            role=Role(m.role.value),
            content=m.content or "",
            tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls or []],
            tool_call_id=m.tool_call_id,
            tool_name=m.tool_name,
            # Any JSON may arrive here; the service rejects what is not an object.
            metadata=cast(dict[str, Any], m.metadata) if m.metadata is not None else {},
        )
        for m in items
    ]
    return await messages.add_messages(info.context.runtime, info.context.user, session_id, incoming)
