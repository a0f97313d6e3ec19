"""`parley serve` without DATABASE_URL: an embedded PostgreSQL under PARLEY_DATA_DIR, stopped on exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import ROOT, free_port, wait_ready

TOKEN_LINE = re.compile(r"^pk_[A-Za-z0-9_-]+$", re.MULTILINE)


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") and k != "DATABASE_URL"}
    env["PARLEY_DATA_DIR"] = str(data_dir)
    env["PARLEY_LOG_LEVEL"] = "warning"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _postgres_running(data_dir: Path) -> bool:
    """Is any process a postgres server on this data dir? (Linux /proc.)"""
    needle = str(data_dir.resolve()).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"postgres" in cmdline and needle in cmdline:
            return True
    return False


def _serve_once(data_dir: Path, log: Path, stop: signal.Signals) -> tuple[int, str]:
    """Start `parley serve`, wait until ready, run `check`, stop it with ``stop``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve", "--port", str(port)],
            cwd=ROOT,
            env=_env(data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(url, process, log)
        output = log.read_text(errors="replace")
        tokens = TOKEN_LINE.findall(output)
        viewer = None
        if tokens:
            resp = httpx.post(
                url + "/graphql",
                json={"query": "{ viewer { name isAdmin } }"},
                headers={"Authorization": f"Bearer {tokens[0]}"},
                timeout=10,
            )
            viewer = resp.json()["data"]["viewer"]
        assert (data_dir / "postmaster.pid").exists() and _postgres_running(data_dir)
        process.send_signal(stop)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, f"{output}\nviewer={viewer}"


def test_embedded_postgres_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    started = time.monotonic()

    code, first = _serve_once(data_dir, tmp_path / "first.log", signal.SIGTERM)
    assert code == 0, first
    # A fresh database: the admin user is created and its token printed once, and it works.
    assert len(TOKEN_LINE.findall(first)) == 1, first
    assert "viewer={'name': 'admin', 'isAdmin': True}" in first
    assert "Traceback" not in first, first
    # The embedded server is stopped with Parley.
    assert not (data_dir / "postmaster.pid").exists()
    assert not _postgres_running(data_dir)

    # Again on the same data dir (Ctrl-C this time): the data is kept, no new admin token.
    code, second = _serve_once(data_dir, tmp_path / "second.log", signal.SIGINT)
    assert code == 0, second
    assert TOKEN_LINE.findall(second) == [], second
    assert "Traceback" not in second, second
    assert not (data_dir / "postmaster.pid").exists()
    assert not _postgres_running(data_dir)
    assert time.monotonic() - started < 60
