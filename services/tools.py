"""Tools: MCP servers per agent, approval of tool calls, and the connections the runs share.

An agent names MCP servers (streamable HTTP). Their tools reach the model through pydantic-ai's
own ``MCPToolset``, filtered (``allowed_tools``) and prefixed (``tool_prefix``); a server that
is down, slow or failing gives the model an error result it can read, never a failed run. Calls
of the tools the agent lists in ``approval_required`` pause the run (pydantic-ai's deferred
tools) until a person decides.

Connections are held by the runtime's :class:`Toolbox`, one per server configuration, and reused
by every run: the headers belong to the agent, not to the user, so runs of several users may
share a connection without sharing anything of theirs (each call carries only its arguments).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic_ai import RunContext
from pydantic_ai.exceptions import ToolFailed
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from services.errors import BadInput

log = logging.getLogger("parley.tools")

MEMORY_TOOLS = ("save_memory", "delete_memory")
MAX_SERVERS = 10
LIST_TIMEOUT_S = 5.0  # listing a server's tools (saving an agent, Agent.tools)
RECONNECT_AFTER_S = 5.0  # a server that could not be reached is tried again after this
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.*-]{1,128}$")


@dataclass(frozen=True)
class McpServer:
    url: str
    headers: tuple[tuple[str, str], ...] = ()  # secrets: used for the connection, never returned
    allowed_tools: tuple[str, ...] | None = None
    tool_prefix: str | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> McpServer:
        """From an agent's stored JSON (already checked when saved)."""
        allowed = raw.get("allowed_tools")
        return cls(
            url=raw["url"],
            headers=tuple(sorted((raw.get("headers") or {}).items())),
            allowed_tools=tuple(allowed) if allowed is not None else None,
            tool_prefix=raw.get("tool_prefix"),
        )

    def stored(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "headers": dict(self.headers),
            "allowed_tools": list(self.allowed_tools) if self.allowed_tools is not None else None,
            "tool_prefix": self.tool_prefix,
        }

    def exposed(self, name: str) -> str:
        """A server's tool name as the model sees it."""
        return f"{self.tool_prefix}_{name}" if self.tool_prefix else name


def check_server(
    url: str, headers: Any, allowed_tools: Sequence[str] | None, tool_prefix: str | None
) -> McpServer:
    """An admin's McpServerInput, refused with a clear reason when it cannot work."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise BadInput(f"an MCP server url is http(s)://host[:port]/path (streamable HTTP), not {url!r}")
    if headers is None:
        headers = {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and len(k) <= 200 and len(v) <= 8000
        for k, v in headers.items()
    ):
        raise BadInput("MCP server headers are a JSON object of header names to string values")
    if len(headers) > 20:
        raise BadInput("at most 20 headers per MCP server")
    if tool_prefix is not None and not _PREFIX.match(tool_prefix):
        raise BadInput("toolPrefix has 1-40 letters, digits or '_', starting with a letter")
    if allowed_tools is not None:
        for name in allowed_tools:
            if not _TOOL_NAME.match(name):
                raise BadInput(f"allowedTools: {name!r} is not a tool name")
    return McpServer(
        url=url.strip(),
        headers=tuple(sorted(headers.items())),
        allowed_tools=tuple(allowed_tools) if allowed_tools is not None else None,
        tool_prefix=tool_prefix,
    )


def check_servers(servers: Sequence[McpServer]) -> None:
    if len(servers) > MAX_SERVERS:
        raise BadInput(f"at most {MAX_SERVERS} MCP servers per agent")


def check_approval_names(names: Sequence[str]) -> list[str]:
    if len(names) > 200:
        raise BadInput("approvalRequired names at most 200 tools")
    for name in names:
        if not _TOOL_NAME.match(name):
            raise BadInput(f"approvalRequired: {name!r} is not a tool name")
    return list(dict.fromkeys(names))


def needs_approval(names: Sequence[str], tool: str) -> bool:
    return "*" in names or tool in names


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str | None
    parameters: Any
    requires_approval: bool
    server: str | None  # the MCP server's url; None for the memory tools


@dataclass
class Guarded(WrapperToolset[Any]):
    """A server's tools as a run sees them: failures become results the model reads.

    Listing that fails (the server is down) offers no tools of that server for the step; a call
    that fails or outlasts ``timeout`` gives the model a failed tool result and the run goes on.
    """

    timeout: float = 30.0
    server: str = ""
    entered: bool = False  # one Guarded per run: whether this run counted itself in

    async def __aenter__(self) -> Guarded:
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                await self.wrapped.__aenter__()
            self.entered = True
        except Exception as exc:  # down: the run goes on without this server's tools
            log.warning("MCP server %s unreachable for this run (%s)", self.server, type(exc).__name__)
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        if self.entered:
            self.entered = False
            try:
                await self.wrapped.__aexit__(*args)
            except Exception:
                log.warning("MCP server %s: closing failed", self.server, exc_info=True)
        return None

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                return await self.wrapped.get_tools(ctx)
        except Exception as exc:
            log.warning("MCP server %s: no tools this step (%s)", self.server, type(exc).__name__)
            return {}

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.wrapped.call_tool(name, tool_args, ctx, tool)
        except TimeoutError as exc:
            raise ToolFailed(f"the tool server did not answer within {self.timeout:g} s") from exc
        except ToolFailed:
            raise
        except Exception as exc:  # unreachable, broken connection, protocol error
            log.warning("MCP tool %s on %s failed: %s", name, self.server, type(exc).__name__)
            raise ToolFailed(f"the tool server failed: {type(exc).__name__}") from exc


class Toolbox:
    """The runtime's MCP connections, one per server configuration, reused by every run.

    Each connection is opened and closed by a task of its own (``start`` makes it a runtime
    task, cancelled at the stop): MCP clients must leave their context in the task that
    entered it. Runs only count themselves in on a connection that is already open.
    """

    def __init__(
        self, tool_timeout_s: float, start: Callable[[Coroutine[Any, Any, None], str], object]
    ) -> None:
        self.tool_timeout_s = tool_timeout_s
        self._start = start
        self._toolsets: dict[McpServer, MCPToolset[Any]] = {}
        self._opening: dict[McpServer, asyncio.Future[bool]] = {}
        self._retry_at: dict[McpServer, float] = {}

    def _toolset(self, server: McpServer) -> MCPToolset[Any]:
        toolset = self._toolsets.get(server)
        if toolset is None:
            toolset = MCPToolset(
                server.url,
                headers=dict(server.headers) or None,
                tool_error_behavior="failed",  # a tool's own error is a result the model reads
                init_timeout=LIST_TIMEOUT_S,
                read_timeout=self.tool_timeout_s,
            )
            self._toolsets[server] = toolset
        return toolset

    async def _hold(self, server: McpServer) -> None:
        """Open the server's connection once (a server that is down is tried again later)."""
        loop = asyncio.get_running_loop()
        opening = self._opening.get(server)
        if opening is None:
            if self._retry_at.get(server, 0.0) > loop.time():
                return
            opening = self._opening[server] = loop.create_future()
            self._start(self._keep(server, opening), "parley-mcp")
        try:
            await asyncio.wait_for(asyncio.shield(opening), LIST_TIMEOUT_S)
        except TimeoutError:
            pass

    async def _keep(self, server: McpServer, opened: asyncio.Future[bool]) -> None:
        toolset = self._toolset(server)
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                await toolset.__aenter__()
        except Exception as exc:
            log.warning("MCP server %s unreachable (%s)", server.url, type(exc).__name__)
            self._retry_at[server] = asyncio.get_running_loop().time() + RECONNECT_AFTER_S
            self._opening.pop(server, None)
            opened.set_result(False)
            return
        opened.set_result(True)
        try:
            await asyncio.Event().wait()  # held until the runtime stops (this task is cancelled)
        finally:
            await toolset.__aexit__(None, None, None)

    def _chain(self, server: McpServer) -> AbstractToolset[Any]:
        toolset: AbstractToolset[Any] = self._toolset(server)
        if server.allowed_tools is not None:
            allowed = set(server.allowed_tools)
            toolset = toolset.filtered(lambda ctx, tool_def: tool_def.name in allowed)
        if server.tool_prefix:
            toolset = toolset.prefixed(server.tool_prefix)
        return Guarded(toolset, timeout=self.tool_timeout_s, server=server.url)

    async def for_run(
        self, servers: Sequence[McpServer], memory: FunctionToolset[Any] | None, approval: Sequence[str]
    ) -> list[AbstractToolset[Any]]:
        """The toolsets of one run, those named in ``approval`` pausing the run when called."""
        toolsets: list[AbstractToolset[Any]] = [memory] if memory is not None else []
        for server in servers:
            await self._hold(server)
            toolsets.append(self._chain(server))
        if not approval:
            return toolsets
        names = list(approval)

        def ask(ctx: RunContext[Any], tool_def: ToolDefinition, args: dict[str, Any]) -> bool:
            return needs_approval(names, tool_def.name)

        return [t.approval_required(ask) for t in toolsets]

    async def server_tools(self, server: McpServer) -> list[ToolInfo] | None:
        """A server's tools as the model would see them; None when the server does not answer."""
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                listed = await self._toolset(server).list_tools()
        except Exception as exc:
            log.info("MCP server %s did not list its tools (%s)", server.url, type(exc).__name__)
            return None
        allowed = set(server.allowed_tools) if server.allowed_tools is not None else None
        return [
            ToolInfo(
                name=server.exposed(t.name),
                description=t.description,
                parameters=json.loads(json.dumps(t.input_schema, default=str)),
                requires_approval=False,
                server=server.url,
            )
            for t in listed
            if allowed is None or t.name in allowed
        ]


def memory_tool_infos(toolset: FunctionToolset[Any]) -> list[ToolInfo]:
    return [
        ToolInfo(
            name=name,
            description=tool.tool_def.description,
            parameters=tool.tool_def.parameters_json_schema,
            requires_approval=False,
            server=None,
        )
        for name, tool in toolset.tools.items()
    ]
