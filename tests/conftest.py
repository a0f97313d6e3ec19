from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.postgres import fresh_database

if TYPE_CHECKING:
    # Types only: the modules are imported by the fixtures once DATABASE_URL is set.
    import asyncpg
    import strawberry
    from starlette.applications import Starlette

    from services.runtime import Runtime
    from services.settings import Settings


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("PARLEY_MODEL", "echo")
    from services.settings import Settings, get_settings

    get_settings.cache_clear()
    return Settings()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    from services import database
    from web.app import create_app

    assert settings.database_url is not None
    await database.migrate(settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Api:
    """GraphQL over HTTP against the ASGI app, as one user."""

    client: httpx.AsyncClient
    token: str
    name: str = ""
    runtime: Runtime | None = None  # the in-process app's runtime (to register scripted models, say)

    @property
    def rt(self) -> Runtime:
        """The in-process app's runtime (Apis of other apps have none)."""
        assert self.runtime is not None, "this Api talks to another app"
        return self.runtime

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> httpx.Response:
        hdrs = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        hdrs.update(headers)
        return await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=hdrs
        )

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a successful operation (fails the test on any error)."""
        resp = await self.post(query, variables)
        body = resp.json()
        assert "errors" not in body, body["errors"]
        assert resp.status_code == 200
        data: dict[str, Any] = body["data"]
        return data

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The first error of an operation that must fail; checks no trace leaks."""
        resp = await self.post(query, variables)
        assert resp.status_code < 500, resp.text
        text = resp.text
        assert "Traceback" not in text and 'File "' not in text and "SELECT " not in text
        body = resp.json()
        assert body.get("errors"), body
        first: dict[str, Any] = body["errors"][0]
        return first

    async def code(self, query: str, variables: dict[str, Any] | None = None) -> str:
        code: str = (await self.error(query, variables))["extensions"]["code"]
        return code


# `await make_api()` or `await make_api(admin=True)`: a new user of the in-process app.
MakeApi = Callable[..., Awaitable[Api]]
# `await variant(**settings_changes)`: a client of an app built from changed settings.
Variant = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def variant(settings: Settings) -> AsyncIterator[Variant]:
    """Clients of apps built from changed settings (each with its lifespan and runtime) on the
    already open test database: ``client = await variant(introspection=False)``."""
    from web.app import create_app

    async with contextlib.AsyncExitStack() as stack:

        async def make(**changes: Any) -> httpx.AsyncClient:
            app = create_app(settings.model_copy(update=changes))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://parley.test")
            )

        yield make


@pytest.fixture(scope="session")
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
        yield c


@pytest.fixture(scope="session")
def runtime(app: Starlette) -> Runtime:
    """The in-process app's runtime."""
    rt: Runtime = app.state.runtime
    return rt


@pytest.fixture
async def make_api(client: httpx.AsyncClient, runtime: Runtime) -> MakeApi:
    from services import users

    async def make(admin: bool = False) -> Api:
        name = f"user-{uuid.uuid4().hex[:8]}"
        _, token = await users.create_user(name, is_admin=admin)
        return Api(client, token, name, runtime)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
async def other(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
async def admin(make_api: MakeApi) -> Api:
    return await make_api(admin=True)


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Read the test database directly (to check what is stored, never to set up state)."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def other_runtime(app: Starlette, settings: Settings) -> AsyncIterator[Runtime]:
    """A second runtime on the test database: another Parley process, as far as the database
    and the other runtime can tell (its own owner key, listener and fan-out), in this one."""
    from services.runtime import Runtime

    assert settings.database_url is not None
    async with Runtime(settings, settings.database_url).running() as rt:
        rt.models = app.state.runtime.models  # the same scripted models
        yield rt


@pytest.fixture(scope="session")
def schema(settings: Settings) -> strawberry.Schema:
    from resolvers.root import build_schema

    return build_schema(settings)


@contextlib.asynccontextmanager
async def subscription(
    schema: strawberry.Schema, runtime: Runtime, token: str, query: str, variables: dict[str, Any]
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """A subscription executed in-process by the schema (no transport), closed on exit."""
    from resolvers.context import Context

    context = Context(runtime, f"Bearer {token}")
    await context.authenticate()
    results = await schema.subscribe(query, variable_values=variables, context_value=context)

    from tests.wsclient import SubscriptionError

    async def data() -> AsyncIterator[dict[str, Any]]:
        async for result in results:
            if result.errors:
                raise SubscriptionError([error.formatted for error in result.errors])
            assert result.data is not None
            yield next(iter(result.data.values()))

    try:
        yield data()
    finally:
        await results.aclose()
