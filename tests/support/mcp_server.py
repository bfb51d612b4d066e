"""A real MCP server (the `mcp` SDK's `MCPServer`, formerly FastMCP) over streamable HTTP
on 127.0.0.1, in a thread: the tools the gateway's tool loop is tested against."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from tests.support.live import free_port


def tools_server() -> MCPServer:
    """Tools: `add` (read-only), `shout`, `boom` (raises), `ping`/`pong` (concurrent only),
    `hang` (never answers in time)."""
    server = MCPServer("respgate-test")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def shout(text: str) -> str:
        """The text in capitals."""
        return text.upper() + "!"

    @server.tool()
    def boom(text: str) -> str:
        """Always fails."""
        raise ValueError(f"boom on {text}")

    # `ping` and `pong` each wait until both are running: they end only if called concurrently.
    both = asyncio.Barrier(2)

    @server.tool()
    async def ping(text: str) -> str:
        """Answers once `pong` runs too."""
        async with asyncio.timeout(10):
            await both.wait()
        return f"ping {text}"

    @server.tool()
    async def pong(text: str) -> str:
        """Answers once `ping` runs too."""
        async with asyncio.timeout(10):
            await both.wait()
        return f"pong {text}"

    @server.tool()
    async def hang(text: str) -> str:
        """Takes far longer than any test's timeout."""
        await asyncio.sleep(60)
        return text

    return server


async def _hanging(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "http":
        await asyncio.sleep(60)


class McpLive:
    """`server` served at `url` (`/mcp`) until the block ends; `requests` records the
    headers of every HTTP request it got, `methods` the JSON-RPC methods posted."""

    def __init__(self, server: MCPServer | None = None, *, sse: bool = False,
                 hang: bool = False) -> None:  # fmt: skip
        self.requests: list[dict[str, str]] = []
        self.methods: list[str] = []
        server = server or tools_server()
        # sse: the older transport only (`/sse`), as servers that predate streamable HTTP;
        # hang: a server that takes every request and never answers
        app = server.sse_app() if sse else server.streamable_http_app()
        if hang:
            app = _hanging
        self.path = "/sse" if sse else "/mcp"
        self.port = free_port()

        async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] != "http":
                return await app(scope, receive, send)
            self.requests.append({k.decode(): v.decode() for k, v in scope["headers"]})

            async def reading():  # type: ignore[no-untyped-def]
                message = await receive()
                if message.get("body", b"").startswith(b"{"):
                    with contextlib.suppress(ValueError):
                        self.methods.append(json.loads(message["body"]).get("method", ""))
                return message

            await app(scope, reading, send)

        config = uvicorn.Config(recording, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self) -> McpLive:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "MCP server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(10)
