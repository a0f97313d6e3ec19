"""Database lifecycle: Tortoise setup, the embedded PostgreSQL, migrations and raw access.

This module is also the one adapter to Tortoise's private corners (each marked where used):
the global fallback context (uvicorn runs the lifespan in a task of its own, and requests must
reach the connections it opened), and building model instances from raw records.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise, connections
from tortoise import context as tortoise_context
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.models import Model

from services.errors import ServiceUnavailable, is_unavailable

log = logging.getLogger("parley.database")

MODELS_MODULE = "models"
MIGRATIONS_MODULE = "migrations"
# Serialises concurrent `migrate` calls from several hosts/processes on one database.
_MIGRATE_LOCK_KEY = 0x5041524C4559  # "PARLEY"

M = TypeVar("M", bound=Model)


def tortoise_config(database_url: str, pool_size: int = 20) -> dict[str, Any]:
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("maxsize", str(pool_size))
    query.setdefault("minsize", "1")
    url = urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), parts.fragment))
    connection = expand_db_url(url)
    connection["engine"] = __name__  # Tortoise's asyncpg client with a cheaper pool reset
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def _reset(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset costs a round trip per release (UNLISTEN, RESET ALL, ...). Parley
    # leaves no session state on pooled connections (LISTEN and session locks live on dedicated
    # ones), so only an unfinished transaction needs undoing.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class ParleyAsyncpgClient(AsyncpgDBClient):
    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        return await asyncpg.create_pool(None, reset=_reset, **kwargs)


client_class = ParleyAsyncpgClient


def asyncpg_dsn(database_url: str) -> str:
    """The URL as asyncpg wants it (no Tortoise pool options)."""
    parts = urlsplit(database_url)
    query = {k: v for k, v in parse_qsl(parts.query) if k not in {"maxsize", "minsize"}}
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) an embedded PostgreSQL under ``data_dir``; stop it on exit."""
    from pgserver.postgres_server import get_server  # lazily: only the embedded path needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve(), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


class Database:
    """Tortoise's connections for one app. Several apps in one process (tests) share the first
    one's (a second app on the same database would otherwise need per-task ORM contexts)."""

    def __init__(self, database_url: str, pool_size: int) -> None:
        self.url = database_url
        self.pool_size = pool_size
        self._owner = False

    async def open(self) -> None:
        # Private: Tortoise keeps the context that may be reached from every task here.
        if tortoise_context._global_context is not None:
            return  # another app of this process opened it (tests): share it, do not own it
        await Tortoise.init(config=tortoise_config(self.url, self.pool_size), _enable_global_fallback=True)
        self._owner = True

    async def close(self) -> None:
        if self._owner:
            self._owner = False
            await Tortoise.close_connections()


async def migrate(database_url: str) -> None:
    """Apply Tortoise migrations, one process at a time."""
    lock_conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await lock_conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK_KEY)
        await tortoise_migrate(config=tortoise_config(database_url, pool_size=2))
    finally:
        await lock_conn.close()


@contextlib.asynccontextmanager
async def acquire() -> AsyncIterator[asyncpg.Connection]:
    """A raw asyncpg connection from Tortoise's pool, for hot paths and SQL the ORM lacks."""
    client: Any = connections.get("default")
    try:
        async with client.acquire_connection() as conn:
            yield conn
    except Exception as exc:
        if is_unavailable(exc) and not isinstance(exc, ServiceUnavailable):
            raise ServiceUnavailable() from exc
        raise


def pool_in_use() -> int:
    """Connections checked out of this process's pool now (0 before it opens)."""
    try:
        client: Any = connections.get("default")
    except Exception:  # Tortoise is not initialised (yet, or any more)
        return 0
    pool = getattr(client, "_pool", None)  # private: Tortoise's asyncpg pool
    if not isinstance(pool, asyncpg.Pool):
        return 0
    return pool.get_size() - pool.get_idle_size()


async def ping() -> bool:
    try:
        async with acquire() as conn:
            await conn.fetchval("SELECT 1")
    except Exception as exc:
        if is_unavailable(exc):
            return False
        raise
    return True


def model_from(model: type[M], record: asyncpg.Record | Mapping[str, Any] | None) -> M:
    """A model instance from a raw record's columns, as Tortoise itself builds them from rows."""
    if record is None:
        raise LookupError(f"no {model.__name__} row")  # the caller's statement returned nothing
    fields = model._meta.fields_db_projection  # private: column names of the model's fields
    return model._init_from_db(**{name: record[name] for name in fields if name in record})
