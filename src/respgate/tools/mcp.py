"""The MCP client: list a remote server's tools and call one, over the official SDK's
streamable HTTP transport. Each operation opens its own session and is bounded by a
timeout; every failure (unreachable, timeout, protocol or tool error) is an `McpError`
whose message is safe to show the model and the client (no header value is in it).
The SDK is imported on first use."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from mcp import Client


@dataclass(frozen=True, slots=True)
class McpServer:
    """Where a request's `mcp` tool goes: its label, URL and headers (never printed)."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)


class McpError(Exception):
    """A listing or call that failed. The message says why (what the model is told);
    `error` is the `mcp_call.error` object OpenAI's API gives: an `http_error` (the
    server unreachable: 502, a timeout: 504, or its HTTP status), an `mcp_protocol_error`
    (a JSON-RPC error) or an `mcp_tool_execution_error` (the tool's own error content)."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error or {"type": "http_error", "code": 502, "message": message}


@functools.cache
def _tls() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


Transport = Literal["streamable_http", "sse"]


@contextlib.asynccontextmanager
async def _session(
    server: McpServer, timeout: float, transport: Transport
) -> AsyncIterator[Client]:
    # The SDK takes half a second to import: only a request with an `mcp` tool pays it.
    import httpx2
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    def http_client(headers: dict[str, str] | None = None, timeout: Any = None,
                    auth: Any = None) -> httpx2.AsyncClient:  # fmt: skip
        # trust_env=False: no proxy variables and no ~/.netrc credentials for a server a
        # client named; one TLS context for all (building one takes tens of milliseconds).
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=_tls(),
                                  trust_env=False)  # fmt: skip

    async with contextlib.AsyncExitStack() as stack:
        if transport == "sse":
            streams = sse_client(server.url, server.headers, timeout, timeout, http_client)
        else:
            http = await stack.enter_async_context(http_client(server.headers, timeout))
            streams = streamable_http_client(server.url, http_client=http)
        client = Client(streams, read_timeout_seconds=timeout, cache=None)
        yield await stack.enter_async_context(client)


def _why(exc: BaseException) -> str:
    """A short reason for `exc`."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _leaf(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio task groups wrap what they raise)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _bounded(server: McpServer, what: str, timeout: float, work: Any) -> Any:
    """`work(client)` in a fresh session within `timeout` seconds; failures as `McpError`.
    A server that cannot be opened over streamable HTTP is tried over the older SSE
    transport (nothing was sent to it yet, so nothing runs twice); if that fails too, the
    first failure is the one reported."""
    failure: BaseException | None = None
    try:
        async with asyncio.timeout(timeout):
            for transport in typing.get_args(Transport):
                opened = False
                try:
                    async with _session(server, timeout, transport) as client:
                        opened = True
                        return await work(client)
                except Exception as exc:
                    if opened or isinstance(_leaf(exc), McpError):
                        raise
                    failure = failure or exc
            assert failure is not None
            raise failure
    except Exception as exc:
        raise _mcp_error(server, what, timeout, failure or exc) from None


def _mcp_error(server: McpServer, what: str, timeout: float, exc: BaseException) -> McpError:
    """`exc` as an `McpError` with OpenAI's error object."""
    import httpx2
    from mcp.shared.exceptions import MCPError

    leaf = _leaf(exc)
    if isinstance(leaf, McpError):
        return leaf
    if isinstance(leaf, TimeoutError | httpx2.TimeoutException):  # ours, or the client's
        message = f"MCP server {server.label!r} did not answer {what} within {timeout:g}s"
        return McpError(message, {"type": "http_error", "code": 504, "message": message})
    message = f"MCP server {server.label!r} failed {what} ({_why(leaf)})"
    if isinstance(leaf, MCPError):
        return McpError(
            message, {"type": "mcp_protocol_error", "code": leaf.code, "message": message}
        )
    status = getattr(getattr(leaf, "response", None), "status_code", None)
    code = status if isinstance(status, int) and status >= 400 else 502
    return McpError(message, {"type": "http_error", "code": code, "message": message})


async def list_tools(server: McpServer, timeout: float) -> list[dict[str, Any]]:
    """The server's tools as OpenAI's `mcp_list_tools` item lists them."""

    async def work(client: Client) -> list[dict[str, Any]]:
        tools, cursor = [], None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        return [
            {
                "name": tool.name,
                "description": tool.description,
                "input_schema": tool.input_schema,
                "annotations": tool.annotations.model_dump(by_alias=True, exclude_none=True)
                if tool.annotations
                else None,
            }
            for tool in tools
        ]

    return await _bounded(server, "the tool listing", timeout, work)


def _text(content: list[Any]) -> str:
    """A call result's content as one string (text blocks as they are, others as JSON)."""
    parts = []
    for block in content:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        else:
            parts.append(orjson.dumps(block.model_dump(mode="json", exclude_none=True)).decode())
    return "\n".join(parts)


async def call_tool(server: McpServer, name: str, arguments: dict[str, Any], timeout: float) -> str:
    """Call `name`; its output text, or `McpError` with the server's error text."""

    async def work(client: Client) -> str:
        result = await client.call_tool(name, arguments)
        text = _text(result.content)
        if not text and result.structured_content is not None:
            text = orjson.dumps(result.structured_content).decode()
        if result.is_error:
            content = [block.model_dump(mode="json", exclude_none=True) for block in result.content]
            error = {"type": "mcp_tool_execution_error", "content": content}
            raise McpError(text or f"MCP tool {name!r} failed", error)
        return text

    return await _bounded(server, f"the call of {name!r}", timeout, work)
