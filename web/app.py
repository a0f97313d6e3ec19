"""The Starlette application: routes, lifespan and the GraphQL view."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from resolvers.context import Context
from schema.build import build_schema
from schema.errors import with_code
from services import agents, database, runtime, users
from services.errors import ParleyError
from services.settings import Settings, get_settings
from web.chat import chat_routes
from web.graphiql import STATIC_DIR, graphiql_html
from web.request_limits import RequestLimits
from web.sockets import ParleyTransportWS

log = logging.getLogger("parley")

STATIC_PREFIX = "/graphiql-static"


class ParleyGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = ParleyTransportWS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=False,
            keep_alive=True,  # pings keep idle proxies from closing quiet sockets
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            allowed_origins=settings.origins,
        )
        self._page = graphiql_html(STATIC_PREFIX)

    def decode_json(self, data: str | bytes) -> object:
        """Standard JSON only; nesting too deep for the parser is a bad request, not a crash."""
        try:
            return json.loads(data, parse_constant=_reject_constant)
        except (RecursionError, ValueError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise
            raise json.JSONDecodeError(f"invalid JSON: {type(exc).__name__}", "", 0) from exc

    def parse_json(self, data: str | bytes) -> Any:
        value = super().parse_json(data)
        if not isinstance(value, dict | list):  # `null`, `1`, `"x"`: no operation in it
            # Strawberry answers a JSONDecodeError with HTTP 400.
            raise json.JSONDecodeError("the request body must be a JSON object", str(data), 0)
        return value

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Errors raised outside the operation's extensions (e.g. the database failing while a
        # token is checked) get their code and masking here.
        if result.errors:
            result.errors = [with_code(error) for error in result.errors]
        return await super().process_result(request, result)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:  # type: ignore[override]
        return Context(self.settings, request.headers.get("authorization"), request)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._page)

    async def on_ws_connect(self, context: Context) -> Any:  # type: ignore[override]
        params = getattr(context, "connection_params", None)
        if isinstance(params, dict):
            for key, value in params.items():
                if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
                    context.authorization = value
        try:
            user = await context.authenticate()
        except ParleyError as exc:
            raise ConnectionRejectionError({"code": exc.code, "message": exc.message}) from exc
        await context.hold_socket(user)  # TooManyConnections closes the socket with 4429
        return await super().on_ws_connect(context)

    async def run(self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET) -> Any:  # type: ignore[override]
        # Operations run over POST and WebSocket only: GET serves GraphiQL and nothing else, so
        # no link or image tag can start a subscription (or anything with a side effect).
        if isinstance(request, Request) and request.method == "GET" and not _wants_html(request):
            return PlainTextResponse(
                "GraphQL operations are sent with POST (or over a WebSocket)",
                status_code=405,
                headers={"Allow": "POST"},
            )
        return await super().run(request, context, root_value)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if await database.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "database unavailable"}, status_code=503)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url = settings.database_url
            if url is None:
                url = stack.enter_context(database.embedded_postgres(settings.data_dir))
                await database.migrate(url)
            await database.open_database(url, settings.pool_size)
            stack.push_async_callback(database.close_database)
            await agents.ensure_default_agent(settings)
            token = await users.ensure_first_admin()
            if token is not None:
                print(
                    f"Parley created the admin user 'admin'. Its API token (shown only once):\n{token}",
                    file=sys.stderr,
                    flush=True,
                )
            await stack.enter_async_context(runtime.running(url, settings))
            yield

    gql = ParleyGraphQL(settings)
    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", gql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", gql),
        *chat_routes(),
    ]
    if settings.graphiql:
        routes.append(Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="graphiql-static"))
    middleware = [
        Middleware(
            RequestLimits,
            max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.max_body_bytes,
            body_timeout_s=settings.body_timeout_s,
        )
    ]
    if settings.origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "accept"],
            )
        )
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
