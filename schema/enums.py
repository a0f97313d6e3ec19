from __future__ import annotations

from enum import Enum

import strawberry


# Values equal the stored (lower-case) values: mappers convert by value.
@strawberry.enum
class MessageRole(Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


@strawberry.enum
class MemoryScope(Enum):
    USER = "user"
    SESSION = "session"


@strawberry.enum
class RunStatus(Enum):
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
