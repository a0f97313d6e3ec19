"""Shared plumbing for the benchmarks in bench/: a throwaway database, a real server process,
a GraphQL client and result lines.

Everything talks to loopback addresses only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

# The checkout whose `parley.py` is run (default: the one holding this bench/ directory).
REPO = Path(os.environ.get("PARLEY_BENCH_REPO") or Path(__file__).resolve().parent.parent).resolve()
ADMIN_URL = os.environ.get("PARLEY_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
READY_TIMEOUT_S = 60.0
NOT_READY_GIVE_UP_S = 15.0  # the app answers but /readyz keeps saying 503: the database is local, so give up
STOP_TIMEOUT_S = 20.0


def install_uvloop() -> str:
    """Use uvloop for the client side when it is installed (uvicorn uses it on the server)."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def base_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="shorter run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-log", action="store_true", help="print the server log path and keep it")
    return parser


def _sigterm_to_exit() -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks drop the database and stop the server."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# --- results ---------------------------------------------------------------------------------


@dataclass
class Report:
    lines: list[tuple[str, str, str, str]] = field(default_factory=list)
    missed: int = 0

    def figure(self, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        if ok is False:
            self.missed += 1
        self.lines.append((name, value, target, verdict))
        print(
            f"  {name:<46} {value:>14}   {('target ' + target) if target else '(info)':<18} {verdict}",
            flush=True,
        )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --- database ------------------------------------------------------------------------------


def _with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_with_db(ADMIN_URL, "postgres").replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def bench_database(tag: str) -> Iterator[str]:
    """A fresh database on the local server, dropped on the way out (also on failure)."""
    name = f"parley_bench_{tag}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_db(ADMIN_URL, name)
    finally:
        for attempt in range(3):
            try:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except Exception as exc:  # keep trying briefly, then say so
                if attempt == 2:
                    print(f"WARNING: could not drop database {name}: {exc}", file=sys.stderr)
                time.sleep(0.5)


def asyncpg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


# --- the server process ----------------------------------------------------------------------


def parley_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env.setdefault("PARLEY_MODEL", "echo")
    # The bench client is one user with hundreds of sockets: lift the per-user limit (a
    # protection against one user hurting others, not part of what is measured).
    env.setdefault("PARLEY_MAX_CONNECTIONS_PER_USER", "100000")
    env.update(extra)
    return env


def parley_cmd(*args: str) -> list[str]:
    """`parley ARGS` of the checkout REPO (its parley.py comes first on sys.path, whatever is installed)."""
    return [sys.executable, str(REPO / "parley.py"), *args]


def run_parley(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        parley_cmd(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"parley {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def setup_database(database_url: str) -> str:
    """`parley migrate`, then `parley user create bench`; returns the token."""
    env = parley_env(database_url)
    run_parley(env, "migrate")
    out = run_parley(env, "user", "create", "bench")
    return out.strip().splitlines()[-1].strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`parley serve` as a separate process on a free loopback port (subclasses: another server
    started the same way, e.g. bench/lean_peer.py)."""

    name = "parley serve"

    def __init__(self, database_url: str, workers: int = 1, log_dir: Path | None = None, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = parley_env(database_url, **env)
        self.workers = workers
        slug = self.name.replace(" ", "-")
        self.log_path = (log_dir or Path(tempfile.gettempdir())) / f"{slug}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return parley_cmd(
            "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)
        )

    def start(self) -> None:
        log = open(self.log_path, "wb")  # closed right after Popen: the child keeps its copy
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches uvicorn's workers too
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        first_503: float | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status = httpx.get(self.url + "/readyz", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                return
            if status is not None:
                first_503 = first_503 or time.monotonic()
                if time.monotonic() - first_503 > NOT_READY_GIVE_UP_S:
                    break
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} (pid {self.proc.pid}) did not become ready: /readyz kept answering 503.\n"
            f"Server log: {self.log_path}\n{self.log_tail(15)}\n{self.probe()}"
        )

    def probe(self) -> str:
        """What an unauthenticated GraphQL call says: shows errors such as a missing ORM context."""
        try:
            body = httpx.post(
                self.url + "/graphql",
                json={"query": "{ viewer { name } }"},
                headers={"Authorization": "Bearer pk_probe"},  # makes the server look the token up
                timeout=5,
            ).text
        except httpx.HTTPError as exc:
            body = repr(exc)
        return f"probe POST /graphql {{ viewer }} -> {body[:300]}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        pgid = proc.pid  # start_new_session: the group id is the server's own pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, without the access-log lines of our /readyz polling."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join([ln for ln in text if '"GET /readyz HTTP' not in ln][-lines:])

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.stop()
        finally:
            if exc_type is not None:
                print(f"--- server log tail ({self.log_path}) ---\n{self.log_tail(60)}\n---", file=sys.stderr)


# --- GraphQL over HTTP -----------------------------------------------------------------------


class GraphQLError(RuntimeError):
    pass


class Stuck(RuntimeError):
    """A request got no answer in time: the server is stuck (see stuck_report)."""


TURN_TIMEOUT_S = 30.0  # an echo turn takes milliseconds; no answer in 30 s means the server is stuck


class Client:
    def __init__(self, base_url: str, token: str, connections: int = 32) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def gql(self, query: str, _timeout: float | None = None, **variables: Any) -> dict[str, Any]:
        try:
            resp = await self.http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                timeout=_timeout if _timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            field = re.search(r"\{\s*(\w+)", query)
            raise Stuck(
                f"no answer within {_timeout or 60:g}s to {field.group(1) if field else query[:40]}"
            ) from exc
        body = resp.json()
        if body.get("errors") or resp.status_code != 200:
            raise GraphQLError(f"HTTP {resp.status_code}: {body.get('errors')}")
        return body["data"]

    async def timed(
        self, query: str, _timeout: float | None = None, **variables: Any
    ) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        data = await self.gql(query, _timeout, **variables)
        return time.perf_counter() - t0, data


CREATE_SESSION = "mutation($t: String) { createSession(input: {title: $t}) { id } }"
ADD_MESSAGES = (
    """mutation($s: UUID!, $m: [MessageInput!]!) { addMessages(sessionId: $s, messages: $m) { sequence } }"""
)
SEND_MESSAGE = """mutation($s: UUID!, $c: String!) {
  sendMessage(sessionId: $s, content: $c) { run { id status error { code message } } reply { sequence content } }
}"""


async def create_session(client: Client, title: str | None = None) -> str:
    return str((await client.gql(CREATE_SESSION, t=title))["createSession"]["id"])


def transcript(n: int, start: int = 0) -> list[dict[str, Any]]:
    """n alternating USER / ASSISTANT messages of ~100 characters."""
    out = []
    for i in range(start, start + n):
        role = "USER" if i % 2 == 0 else "ASSISTANT"
        out.append({"role": role, "content": f"message {i}: " + "lorem ipsum dolor sit amet " * 3})
    return out


async def seed_messages(client: Client, session_id: str, count: int, batch: int = 100) -> None:
    """``count`` messages through addMessages, ``batch`` per call (the API's limit is 100)."""
    done = 0
    while done < count:
        n = min(batch, count - done)
        await client.gql(ADD_MESSAGES, s=session_id, m=transcript(n, done))
        done += n


async def send_turn(client: Client, session_id: str, content: str) -> float:
    elapsed, data = await client.timed(SEND_MESSAGE, TURN_TIMEOUT_S, s=session_id, c=content)
    payload = data["sendMessage"]
    if payload["run"]["status"] != "COMPLETED" or payload["reply"] is None:
        raise GraphQLError(f"turn did not complete: {payload}")
    return elapsed


@contextlib.asynccontextmanager
async def db_conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_url(database_url))
    try:
        yield conn
    finally:
        await conn.close()


async def stuck_report(database_url: str) -> str:
    """What the bench database's connections are doing, and the runs left RUNNING."""
    async with db_conn(database_url) as conn:
        rows = await conn.fetch(
            """SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q,
                      count(*) AS n
               FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
               GROUP BY 1, 2, 3, 4 ORDER BY n DESC"""
        )
        running = await conn.fetchval("SELECT count(*) FROM runs WHERE status = 'running'")
    lines = [f"runs still RUNNING: {running}", "server connections (count, state, wait, last query):"]
    lines += [
        f"  {r['n']:>3}  {r['state']:<20} {(r['wait_event_type'] or '-')}/{(r['wait_event'] or '-'):<14} {r['q']}"
        for r in rows
    ]
    return "\n".join(lines)


# --- counting statements on the server side ---------------------------------------------------


def _readable_file(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.R_OK) else None


class StatementLog:
    """Statements a database executed, read from PostgreSQL's own log (``log_statement = 'all'``).

    ``ALTER DATABASE ... SET log_statement = 'all'`` applies to connections opened afterwards,
    so enable it before the server starts. Every executed statement (simple protocol:
    ``statement: ...``; extended protocol, as asyncpg uses: ``execute <name>: ...``) is one line.
    """

    LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (\S*)@(\S*) LOG:  (?:statement|execute [^:]*): (.*)$")
    ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # any new log entry

    def __init__(self, database: str, path: Path) -> None:
        self.database = database
        self.path = path
        self._offset = 0

    @staticmethod
    async def locate(conn: asyncpg.Connection) -> Path | None:
        """The file this server logs to (the collector's file, or the postmaster's stderr)."""
        current = await conn.fetchval("SELECT pg_current_logfile()")
        if current:
            data_dir = await conn.fetchval("SHOW data_directory")
            return _readable_file(Path(current) if current.startswith("/") else Path(data_dir) / current)
        pid = await conn.fetchval("SELECT pg_backend_pid()")  # a backend's stderr is the postmaster's
        try:
            return _readable_file(Path(os.readlink(f"/proc/{pid}/fd/2")))
        except OSError:
            return None

    def mark(self) -> None:
        self._offset = self.path.stat().st_size

    def since_mark(self) -> list[str]:
        """The statements of this database logged since :meth:`mark` (multi-line SQL joined)."""
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            text = f.read().decode(errors="replace")
        out: list[str] = []
        mine = False  # is the current log entry one of our statements (continuation lines follow it)?
        for line in text.splitlines():
            m = self.LINE.match(line)
            if m:
                mine = m.group(3) == self.database
                if mine:
                    out.append(m.group(4))
            elif self.ENTRY.match(line):
                mine = False
            elif mine:
                out[-1] = (out[-1] + " " + line.strip()).strip()
        return out


# --- CPU accounting ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime (+ reaped children) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def backend_pids(database: str) -> list[int]:
    """PostgreSQL backend processes serving ``database`` (their process title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres: ") and f" {database} " in cmd:
                pids.append(int(entry.name))
    return pids


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat, idle and iowait excluded)."""
    with contextlib.suppress(OSError):
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(values[:8]) - values[3] - values[4]
        return busy / os.sysconf("SC_CLK_TCK")
    return 0.0


class CpuMeter:
    """Who used the CPU during a measurement: the server, the bench database's PostgreSQL
    backends, this client, and everything else on the machine (other people's work included)."""

    def __init__(self, database: str, server_pid: int | None = None) -> None:
        self.database = database
        self.server_pid = server_pid
        self._before: dict[str, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        out = {"client": time.process_time(), "machine": machine_busy_seconds()}
        if self.server_pid is not None:
            out["server"] = cpu_seconds(self.server_pid)
        # Backends come and go (pool growth): a new one counts from zero, which is what we want.
        out["postgres"] = sum(cpu_seconds(p) for p in backend_pids(self.database))
        return out

    def start(self) -> None:
        self._before = self._sample()
        self._t0 = time.perf_counter()

    def stop(self) -> str:
        after = self._sample()
        wall = time.perf_counter() - self._t0
        used = {k: after[k] - self._before.get(k, 0.0) for k in after}
        ours = sum(v for k, v in used.items() if k != "machine")
        used["others"] = max(0.0, used["machine"] - ours)
        order = [k for k in ("server", "postgres", "client", "others") if k in used]
        parts = [f"{k} {100 * used[k] / wall:.0f}%" for k in order]
        note = f"CPU, % of one core ({os.cpu_count()} cores): " + ", ".join(parts)
        if used["others"] / wall > 0.25:
            note += "   <- other work on this machine competed for the CPU; figures are pessimistic"
        return note


def is_transaction_control(sql: str) -> bool:
    return bool(re.match(r"^\s*(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|SAVEPOINT|RELEASE)\b", sql, re.I))


def fail_stuck(report: Report, exc: Stuck, database_url: str) -> None:
    """Report a stuck server (call while it still runs) and end the run with exit status 2."""
    print(f"\nSTUCK: {exc}", flush=True)
    try:
        print(asyncio.run(stuck_report(database_url)), flush=True)
    except Exception as diag:  # the diagnosis is best effort
        print(f"(could not inspect the database: {diag})")
    report.figure("server answered every request", "no", "yes", False)
    raise SystemExit(2)


def main_wrapper(body: Any, args: argparse.Namespace) -> None:
    _sigterm_to_exit()
    report = body(args)
    if args.strict and report.missed:
        sys.exit(1)
