"""The GraphQL-over-HTTP spec's own audit, graphql-http's ``auditServer``, against ``parley serve``.

graphql-http is an npm package: it is installed from ``tests/http_audit/package-lock.json``
(``npm ci``) when ``tests/http_audit/node_modules`` lacks it. Without node and npm the test skips.
Any MUST or SHOULD audit that is not ok fails it; MAY notices (operations over GET, which
Parley refuses on purpose) are only counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from tests.conftest import Api
from tests.servers import Server, parley_server

AUDIT_DIR = Path(__file__).resolve().parent / "http_audit"
LEVELS = ("MUST", "SHOULD", "MAY")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` is not installed: the GraphQL-over-HTTP audit (graphql-http) runs on Node.js")
    return path


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with graphql-http installed next to the audit script."""
    node, npm = _tool("node"), _tool("npm")
    if not (AUDIT_DIR / "node_modules" / "graphql-http" / "package.json").is_file():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=AUDIT_DIR,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node


@pytest.fixture(scope="module")
def server(database_url: str, app: Starlette, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with parley_server(database_url, tmp_path_factory.mktemp("http-audit")) as running:
        yield running


def tally(results: list[dict[str, Any]]) -> str:
    package = AUDIT_DIR / "node_modules" / "graphql-http" / "package.json"
    version = json.loads(package.read_text())["version"]
    lines = [f"graphql-http {version} auditServer: {len(results)} audits"]
    for level in LEVELS:
        counts = Counter(r["status"] for r in results if r["name"].startswith(f"{level} "))
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda c: c[0] != "ok"))
        lines.append(f"  {level:<6} {sum(counts.values()):>2}: {shown}")
    for r in results:
        if r["status"] != "ok":
            lines.append(f"  {r['status']} {r['id']} {r['name']}: {r['reason']}")
    return "\n".join(lines)


@pytest.mark.timeout(300)  # a first run installs graphql-http with npm
async def test_graphql_over_http_audit(node: str, server: Server, api: Api) -> None:
    assert api.token is not None
    process = await asyncio.create_subprocess_exec(
        node,
        str(AUDIT_DIR / "audit.mjs"),
        f"{server.url}/graphql",
        cwd=AUDIT_DIR,
        env={**os.environ, "PARLEY_TOKEN": api.token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert out, f"the audit printed nothing (exit {process.returncode}):\n{err.decode(errors='replace')}"
    results: list[dict[str, Any]] = json.loads(out)["results"]
    summary = tally(results)
    print(summary)
    assert {r["name"].split(" ", 1)[0] for r in results} == set(LEVELS), summary
    failing = [r for r in results if r["status"] != "ok" and not r["name"].startswith("MAY ")]
    assert failing == [], summary
    assert process.returncode == 0, err.decode(errors="replace")
