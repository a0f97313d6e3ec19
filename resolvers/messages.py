from __future__ import annotations

import uuid
from typing import Any, cast

from models import Role
from resolvers import mapping
from resolvers.context import Context, page_args
from schema.inputs import MessageInput
from schema.message import Message, MessageConnection
from services import messages
from services.conversation import IncomingMessage


async def add_messages(ctx: Context, session_id: uuid.UUID, items: list[MessageInput]) -> list[Message]:
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
    added = await messages.add_messages(ctx.runtime, ctx.user, session_id, incoming)
    return [mapping.message(m) for m in added]


async def message_list(
    ctx: Context,
    session_id: uuid.UUID,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> MessageConnection:
    args = page_args(first, after, last, before, None)
    return mapping.message_page(await messages.list_messages(ctx.runtime, ctx.user, session_id, args))
