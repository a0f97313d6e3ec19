"""The Starlette application: routes, lifespan and the GraphQL view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from resolvers.context import Context
from resolvers.root import build_schema
from schema.errors import with_code
from services import agents, database, users
from services.errors import ParleyError
from services.runtime import Runtime
from services.settings import Settings, get_settings
from web import uploads
from web.attachments import attachment_routes
from web.chat import chat_routes
from web.executor import ProjectingExecutor
from web.graphiql import STATIC_DIR, graphiql_html
from web.media_types import GraphQLOverHTTP, error_response
from web.request_ids import RequestIds
from web.request_limits import RequestLimits
from web.sockets import ParleyTransportWS

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("parley")

STATIC_PREFIX = "/graphiql-static"


class ParleyGraphQL(GraphQLOverHTTP[Context, None]):
    graphql_transport_ws_handler_class = ParleyTransportWS

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None  # set by the app's lifespan
        super().__init__(
            build_schema(settings, execution_context_class=ProjectingExecutor),
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=False,
            keep_alive=True,  # pings keep idle proxies from closing quiet sockets
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            allowed_origins=settings.origins,
            multipart_uploads_enabled=True,  # uploadAttachment (web/uploads.py)
        )
        self.request_adapter_class = uploads.adapter_class(
            max_file_bytes=settings.max_attachment_bytes, max_field_bytes=settings.max_body_bytes
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

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        if self.runtime is None:
            raise RuntimeError("the app's lifespan has not started its runtime")
        return Context(self.runtime, request.headers.get("authorization"), request)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._page)

    async def on_ws_connect(self, context: Context) -> Any:
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

    async def run(self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        # Operations run over POST and WebSocket only: GET serves GraphiQL and nothing else, so
        # no link or image tag can start a subscription (or anything with a side effect).
        if isinstance(request, Request) and request.method == "GET" and not _wants_html(request):
            return PlainTextResponse(
                "GraphQL operations are sent with POST (or over a WebSocket)",
                status_code=405,
                headers={"Allow": "POST"},
            )
        if not isinstance(request, Request) or not uploads.is_multipart(request):
            return await super().run(request, context, root_value)
        if not uploads.forces_preflight(request):
            return error_response(
                400,
                "a multipart request needs a header that forces a CORS preflight: "
                "send `Apollo-Require-Preflight: true` (or `GraphQL-Preflight: 1`)",
            )
        try:
            return await super().run(request, context, root_value)
        finally:
            await uploads.close_form(request)


def _hear_stop_signals(rt: Runtime) -> None:
    """Under uvicorn, let the runtime hear SIGTERM/SIGINT first.

    uvicorn waits for open requests before it runs the app's shutdown, and a request waiting
    for a reply would wait for the reply: the runtime ends the replies at once instead
    (recorded FAILED/INTERRUPTED), so those requests get their answer and the stop stays short.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        owner = getattr(previous, "__self__", None)
        if not callable(previous) or type(owner).__module__ != "uvicorn.server":
            continue  # not uvicorn's handler (tests, other servers): leave it alone

        def on_signal(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(rt.begin_stop)
            previous(signum, frame)

        signal.signal(sig, on_signal)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus' text format (every worker's figures under --workers N); no secret or content in it."""
    rt: Runtime = request.app.state.runtime
    rt.metrics.db_pool_in_use.set(database.pool_in_use())
    body, content_type = await asyncio.to_thread(rt.metrics.render)  # reads files in multiprocess mode
    return Response(body, media_type=content_type)


async def readyz(request: Request) -> Response:
    if await database.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "database unavailable"}, status_code=503)


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> Starlette:
    """The app; ``tracer_provider``: where its spans go instead of OTEL_EXPORTER_OTLP_ENDPOINT (tests)."""
    settings = settings or get_settings()

    gql = ParleyGraphQL(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url = settings.database_url
            if url is None:
                url = stack.enter_context(database.embedded_postgres(settings.data_dir))
                await database.migrate(url)
            rt = await stack.enter_async_context(Runtime(settings, url, tracer_provider).running())
            await agents.ensure_default_agent(settings)
            token = await users.ensure_first_admin()
            if token is not None and settings.log_format == "json":
                # Machine-read logs are kept and shipped: no secret goes there.
                log.warning("created the admin user 'admin'; issue its token with `parley user token admin`")
            elif token is not None:
                print(
                    f"Parley created the admin user 'admin'. Its API token (shown only once):\n{token}",
                    file=sys.stderr,
                    flush=True,
                )
            gql.runtime = app.state.runtime = rt
            stack.callback(setattr, gql, "runtime", None)
            _hear_stop_signals(rt)
            yield

    routes: list[Any] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", gql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", gql),
        *attachment_routes(settings),
        *chat_routes(),
    ]
    if settings.metrics:
        routes.append(Route("/metrics", metrics))
    if settings.graphiql:
        routes.append(Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="graphiql-static"))
    middleware = [
        Middleware(RequestIds, access_log=settings.log_format == "json"),
        Middleware(
            RequestLimits,
            max_body_bytes=settings.max_body_bytes,
            # A multipart request: its files, within the attachment limit, and the operations.
            max_upload_bytes=settings.max_attachment_bytes + settings.max_body_bytes,
            body_timeout_s=settings.body_timeout_s,
        ),
    ]
    if settings.origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "accept", *uploads.PREFLIGHT_HEADERS],
                expose_headers=["content-disposition"],
            )
        )
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
