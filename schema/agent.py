from __future__ import annotations

import uuid
from datetime import datetime

import strawberry


@strawberry.type
class Agent:
    id: uuid.UUID
    name: str = strawberry.field(description="unique")
    model: str = strawberry.field(description="pydantic-ai model string")
    instructions: str
    memory_enabled: bool = strawberry.field(description="the model gets the memory tools")
    history_limit: int = strawberry.field(description="most messages of history sent to the model")
    max_requests_per_run: int = strawberry.field(
        description="most model requests one run may make; past it the run fails with USAGE_LIMIT"
    )
    created_at: datetime
