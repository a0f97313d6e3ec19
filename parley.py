"""Parley's entry points: the ASGI ``app`` and the ``parley`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from services.settings import get_settings


def create_app() -> Any:
    from web.app import create_app as _create

    return _create()


def __getattr__(name: str) -> Any:
    # `uvicorn parley:app` works too; the app is built on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)


@contextlib.contextmanager
def _database_url() -> Iterator[str]:
    """DATABASE_URL, or an embedded PostgreSQL under PARLEY_DATA_DIR for the block's life."""
    from services import database

    settings = get_settings()
    if settings.database_url:
        yield settings.database_url
        return
    with database.embedded_postgres(settings.data_dir) as url:
        yield url


def _with_db(fn: Callable[[], Awaitable[Any]]) -> Any:
    from services import database

    async def run(url: str) -> Any:
        await database.migrate(url)
        db = database.Database(url, pool_size=2)
        await db.open()
        try:
            return await fn()
        finally:
            await db.close()

    with _database_url() as url:
        return asyncio.run(run(url))


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _metrics_dir(workers: int, given: bool) -> Iterator[None]:
    """Several workers add up their metrics through files in one directory (prometheus-client's
    multiprocess mode): a fresh one for this server, removed when it stops. An operator's own
    PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if workers <= 1 or given:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="parley-metrics-") as path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # read by the workers, which start after this
        get_settings.cache_clear()
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def cmd_serve(args: argparse.Namespace) -> int:
    import functools
    import logging.config

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from services import database, telemetry
    from web.protocol import HeaderDeadlineProtocol

    settings = get_settings()
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then raises the signal again: turn
    # that into a normal exit so the embedded database below is stopped and the code is 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    workers = args.workers or settings.workers
    log_config = telemetry.log_config(settings.log_format, settings.log_level)
    if log_config is not None:  # the embedded database and the migrations log in it too
        logging.config.dictConfig(log_config)
    with _database_url() as url, _metrics_dir(workers, settings.metrics_dir is not None):
        asyncio.run(database.migrate(url))
        # Workers are new processes that read the settings again: hand them the same database
        # (and this process too: the app must join this database, not start its own).
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        uvicorn.run(
            "parley:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=workers,
            log_level=settings.log_level,
            log_config=log_config or LOGGING_CONFIG,
            # JSON logs get Parley's own access lines (with the request id, without query strings).
            access_log=settings.log_format != "json",
            # A protocol factory: uvicorn calls it like the class, though it types `http` as one.
            http=functools.partial(HeaderDeadlineProtocol, header_timeout_s=settings.header_timeout_s),  # type: ignore[arg-type]
            timeout_keep_alive=settings.keepalive_timeout_s,
            # The runtime ends running replies at the stop signal; this bounds what is left.
            timeout_graceful_shutdown=5,
            ws="websockets-sansio",
            # A larger WebSocket message closes the socket with 1009 before it is buffered whole.
            ws_max_size=settings.max_body_bytes,
            # Compression costs ~40 KB per connection; chat deltas are small anyway.
            ws_per_message_deflate=False,
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from services import database

    with _database_url() as url:
        asyncio.run(database.migrate(url))
    print("migrations applied")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from models import UserKind
    from services import users

    async def create() -> str:
        user, token = await users.create_user(args.name, is_admin=args.admin)
        print(f"created user {user.name!r}{' (admin)' if user.is_admin else ''}; its API token:")
        return token

    async def token() -> str:
        print(f"new API token for {args.name!r}:")
        return await users.issue_token(args.name)

    async def revoke() -> str:
        count = await users.revoke_tokens(args.name)
        return f"revoked {count} token(s) of {args.name!r}; their open connections are closed"

    async def delete() -> str:
        kind = UserKind.JWT if args.jwt else UserKind.TOKEN
        count = await users.delete_user(args.name, kind)
        return f"deleted user {args.name!r} with {count} session(s)"

    actions = {"create": create, "token": token, "revoke": revoke, "delete": delete}
    print(_with_db(actions[args.action]))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from resolvers.root import print_sdl

    sys.stdout.write(print_sdl(get_settings()))
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from services import retention

    count = _with_db(lambda: retention.cleanup(args.inactive_days))
    print(f"deleted {count} inactive sessions")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley: AI-agent conversations over GraphQL")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database, then serve the app")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="action", required=True)
    create = user_sub.add_parser("create", help="create a user; prints its token last")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true")
    token = user_sub.add_parser("token", help="issue another token; prints it last")
    token.add_argument("name")
    revoke = user_sub.add_parser(
        "revoke", help="invalidate all of a user's tokens and close their connections"
    )
    revoke.add_argument("name")
    delete = user_sub.add_parser("delete", help="remove a user with all their sessions and memory")
    delete.add_argument("name")
    delete.add_argument("--jwt", action="store_true", help="the user named by JWTs, not a token user")
    user.set_defaults(fn=cmd_user)

    sub.add_parser("schema", help="print the GraphQL SDL").set_defaults(fn=cmd_schema)

    cleanup = sub.add_parser("cleanup", help="delete sessions inactive for N days")
    cleanup.add_argument("--inactive-days", type=int, required=True)
    cleanup.set_defaults(fn=cmd_cleanup)
    return parser


def main(argv: list[str] | None = None) -> None:
    from services.errors import ParleyError

    args = _parser().parse_args(argv)
    try:
        sys.exit(args.fn(args))
    except ParleyError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        reason = _unreachable_database(exc)
        if reason is None:
            raise
        print(f"error: cannot use the database: {reason}", file=sys.stderr)
        sys.exit(2)


def _unreachable_database(exc: BaseException | None) -> str | None:
    """Why the database could not be used, when that is what ``exc`` means (else None)."""
    from services.errors import infrastructure_failure

    found = infrastructure_failure(exc)
    if found is None or found[0] != "unavailable":
        return None
    return str(found[1]) or type(found[1]).__name__


if __name__ == "__main__":
    main()
