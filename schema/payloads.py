from __future__ import annotations

import strawberry

from schema.message import Message
from schema.run import Run


@strawberry.type
class SendMessagePayload:
    run: Run
    user_message: Message
    reply: Message | None
    messages: list[Message] = strawberry.field(
        description="all the call persisted, the user's first, in sequence order"
    )
