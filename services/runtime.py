"""Per-process runtime: liveness lock, crash recovery (filled in by the runs work)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from services.settings import Settings


@contextlib.asynccontextmanager
async def running(database_url: str, settings: Settings) -> AsyncIterator[None]:
    yield
