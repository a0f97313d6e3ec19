"""Where the tests' PostgreSQL comes from: TEST_DATABASE_URL, the local server, or pgserver."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

LOCAL = "postgres://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    async def check() -> bool:
        try:
            conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1), timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(check())


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.contextmanager
def server_url() -> Iterator[str]:
    """A URL to a maintenance database of a server the tests may create databases on."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _reachable(LOCAL):
        yield LOCAL
        return
    from pgserver.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="parley-test-pg-") as tmp:
        server = get_server(tmp, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Create a database of our own for this run and drop it afterwards."""
    with server_url() as admin_url:
        name = f"parley_test_{uuid.uuid4().hex[:12]}"
        admin = admin_url.replace("postgres://", "postgresql://", 1)

        async def execute(sql: str) -> None:
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(execute(f'CREATE DATABASE "{name}"'))
        try:
            yield _with_db(admin_url, name)
        finally:
            asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
