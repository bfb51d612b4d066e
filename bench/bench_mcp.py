"""What a gateway-run MCP tool costs: a real MCP server (the SDK's `MCPServer`,
streamable HTTP on 127.0.0.1, in a thread) listed and called `-n` times through
`respgate.tools.mcp`, each in a new session and all in one shared session (as one
response's operations are), then whole `echo` responses through
the engine without tools, with one MCP call (listing, call, second model call) and with
three concurrent calls (`echo` calls every function it is offered). Prints milliseconds (median and p90). Asserts nothing.

    python bench/bench_mcp.py [-n 50]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Awaitable, Callable

import uvicorn
from mcp.server.mcpserver import MCPServer

from respgate.config import McpConfig
from respgate.engine import Engine
from respgate.protocol.request import parse_create_request
from respgate.providers.registry import ProviderRegistry
from respgate.tools.mcp import McpServer, McpSessions


def serve() -> str:
    server = MCPServer("bench")

    @server.tool()
    def shout(text: str) -> str:
        """The text in capitals."""
        return text.upper()

    @server.tool()
    def whisper(text: str) -> str:
        """The text in lower case."""
        return text.lower()

    @server.tool()
    def count(text: str) -> int:
        """The text's length."""
        return len(text)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(server.streamable_http_app(), host="127.0.0.1", port=port,
                            log_level="error")  # fmt: skip
    running = uvicorn.Server(config)
    threading.Thread(target=running.run, daemon=True).start()
    while not running.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/mcp"


async def timed(n: int, work: Callable[[], Awaitable[object]]) -> str:
    await work()  # warm-up (imports, first connection)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - t0) * 1000)
    p90 = statistics.quantiles(samples, n=10)[-1]
    return f"median {statistics.median(samples):7.2f} ms   p90 {p90:7.2f} ms"


async def response(engine: Engine, body: bytes) -> None:
    run = await engine.create(parse_create_request(body))
    while await run.next_batch():
        pass


async def main(n: int) -> None:
    url = serve()
    server = McpServer("bench", url)

    async def alone(operation: str, *args: object) -> object:
        sessions = McpSessions(10)
        try:
            return await getattr(sessions, operation)(server, *args, 10)
        finally:
            sessions.aclose()

    shared = McpSessions(10)
    for operation, args in (("list_tools", ()), ("call_tool", ("shout", {"text": "hi"}))):
        work = lambda operation=operation, args=args: alone(operation, *args)  # noqa: E731
        print(f"{operation:<13} new session {await timed(n, work)}")
        work = lambda operation=operation, args=args: getattr(shared, operation)(server, *args, 10)  # noqa: E731
        print(f"{operation:<13} shared      {await timed(n, work)}")
    shared.aclose()
    engine = Engine(ProviderRegistry(), mcp=McpConfig(allowed_hosts=("127.0.0.1",)))
    plain = b'{"model": "echo", "input": "hi"}'
    print(f"echo response, no tools  {await timed(n, lambda: response(engine, plain))}")
    for calls, allowed in ((1, b', "allowed_tools": ["shout"]'), (3, b"")):
        tool = (b'{"model": "echo", "input": "hi", "tools": [{"type": "mcp", "server_label": "b", '
                b'"server_url": "' + url.encode() + b'", "require_approval": "never"' + allowed
                + b"}]}")  # fmt: skip
        work = lambda tool=tool: response(engine, tool)  # noqa: E731
        print(f"echo response, {calls} call{'s' if calls > 1 else ' '}   {await timed(n, work)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50)
    asyncio.run(main(parser.parse_args().n))
