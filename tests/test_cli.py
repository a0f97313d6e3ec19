"""The `parley` command, run as a subprocess against the test database."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import Api
from tests.servers import ROOT


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        return self.stdout.strip().splitlines()[-1]


async def parley(database_url: str | None, *args: str) -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") and k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def viewer(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    found: dict[str, Any] = (await Api(client, token).gql("{ viewer { name isAdmin } }"))["viewer"]
    return found


async def test_cli(database_url: str, client: httpx.AsyncClient) -> None:
    alice, boss = f"cli-{uuid.uuid4().hex[:8]}", f"cli-admin-{uuid.uuid4().hex[:8]}"
    # Independent commands run side by side to keep the test quick.
    migrate, schema, created, created_admin = await asyncio.gather(
        parley(database_url, "migrate"),
        parley(database_url, "schema"),
        parley(database_url, "user", "create", alice),
        parley(database_url, "user", "create", boss, "--admin"),
    )
    assert migrate.code == 0, migrate.stderr
    assert "Traceback" not in migrate.stderr

    assert schema.code == 0, schema.stderr
    assert "type Query {" in schema.stdout and "type Mutation {" in schema.stdout
    assert "scalar UUID" in schema.stdout

    assert created.code == 0, created.stderr
    token = created.last_line
    assert token.startswith("pk_") and " " not in token
    assert await viewer(client, token) == {"name": alice, "isAdmin": False}

    assert created_admin.code == 0, created_admin.stderr
    assert await viewer(client, created_admin.last_line) == {"name": boss, "isAdmin": True}

    another, duplicate, unknown = await asyncio.gather(
        parley(database_url, "user", "token", alice),
        parley(database_url, "user", "create", alice),
        parley(database_url, "user", "token", f"nobody-{uuid.uuid4().hex[:8]}"),
    )
    assert another.code == 0, another.stderr
    second = another.last_line
    assert second.startswith("pk_") and second != token
    # Both tokens work.
    assert await viewer(client, second) == {"name": alice, "isAdmin": False}
    assert await viewer(client, token) == {"name": alice, "isAdmin": False}

    assert duplicate.code != 0
    assert "already exists" in duplicate.stderr and alice in duplicate.stderr
    assert "Traceback" not in duplicate.stderr + duplicate.stdout
    assert "pk_" not in duplicate.stdout

    assert unknown.code != 0
    assert "not found" in unknown.stderr
    assert "Traceback" not in unknown.stderr + unknown.stdout


async def test_cli_without_a_reachable_database() -> None:
    done = await parley("postgres://postgres@127.0.0.1:9/nothing", "user", "create", "someone")
    assert done.code != 0
    assert "Traceback" not in done.stderr
    assert "database" in done.stderr.lower()
