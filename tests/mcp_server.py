"""A real MCP server for the tool tests (FastMCP, streamable HTTP), run as a process of its own.

    python -m tests.mcp_server PORT LOG [NAMESET]

Its tools append one JSON line per call to LOG (so tests see which calls really ran and with
which arguments and headers). NAMESET "twin" serves only an ``add`` (to clash with
another server's); "all" (default) serves every tool.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_headers


def serve(port: int, log: Path, nameset: str) -> None:
    mcp = FastMCP("parley-test")

    def record(tool: str, **args: object) -> None:
        headers = get_http_headers(include_all=True)
        entry = {"tool": tool, "args": args, "secret": headers.get("x-secret")}
        with log.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    @mcp.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        record("add", a=a, b=b)
        return a + b

    if nameset != "twin":

        @mcp.tool
        async def slow(seconds: float) -> str:
            """Wait, then answer."""
            record("slow", seconds=seconds)
            await asyncio.sleep(seconds)
            return "done waiting"

    if nameset == "all":

        @mcp.tool
        def broken() -> str:
            """Always fails."""
            record("broken")
            raise ValueError("the broken tool broke")

        @mcp.tool
        def delete_everything(confirm: str) -> str:
            """A dangerous tool."""
            record("delete_everything", confirm=confirm)
            return f"deleted ({confirm})"

    mcp.run(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="WARNING")


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "all")
