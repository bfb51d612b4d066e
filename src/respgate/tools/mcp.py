"""The MCP client: list a remote server's tools and call one, over the official SDK's
streamable HTTP transport (SSE as a fallback). `McpSessions` holds one response's sessions,
one per server; every operation is bounded by a timeout; every failure (unreachable, timeout, protocol or tool error) is an `McpError`
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


@contextlib.asynccontextmanager
async def _opened(server: McpServer, timeout: float) -> AsyncIterator[Client]:
    """A session with `server`: over streamable HTTP, or, when it cannot be opened that way,
    over the older SSE transport (nothing was sent to it yet, so nothing runs twice); if
    that fails too, the first failure is the one raised."""
    failure: BaseException | None = None
    for transport in typing.get_args(Transport):
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(_session(server, timeout, transport))
        except Exception as exc:
            failure = failure or exc
            continue
        async with stack:
            yield client
        return
    assert failure is not None
    raise failure


@dataclass(slots=True)
class _Held:
    """A session owned by its own task: the SDK's session lives in anyio task groups, which
    only the task that entered them may leave, while a response's operations run in
    several tasks (the listing before the first byte, each call in its own)."""

    ready: asyncio.Future[Client]
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None

    async def own(self, server: McpServer, timeout: float) -> None:
        try:
            async with _opened(server, timeout) as client:
                self.ready.set_result(client)
                await self.stop.wait()
        except Exception as exc:  # (after it opened: the operations in flight see their own)
            self._failed(exc)
        finally:
            self._failed(ConnectionError("the MCP session was closed before it opened"))

    def _failed(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # retrieved: an operation that gave up waiting never will


_closing: set[asyncio.Task[None]] = set()  # sessions being closed (a reference keeps them)
CLOSE_TIMEOUT = 5.0  # seconds a session may take to close before it is cancelled


class McpSessions:
    """One response's MCP sessions: one per server, opened on first use and shared by its
    listing and every call (concurrent ones too), closed by `aclose()` when the response
    ends, ends early or is aborted. Closing does not wait for the servers: the sessions are
    told to end and finish in the background (bounded by `CLOSE_TIMEOUT`), so a slow server
    cannot delay the response's last event.

    A session that failed an operation in transport (unreachable, an HTTP error, a
    timeout) is not used again: the next operation opens a new one (the failed one is
    closed with the others, since concurrent calls may still use it). A call the server
    rejects because it no longer knows the session ("Session terminated": an expired
    session, so the call did not run) is sent once more on a new session."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout  # the longest any operation may take (the HTTP client's bound)
        self._open: dict[str, _Held] = {}  # by server label: the session an operation uses
        self._all: list[_Held] = []

    async def _client(self, server: McpServer, timeout: float) -> Client:
        held = self._open.get(server.label)
        if held is None:
            loop = asyncio.get_running_loop()
            held = self._open[server.label] = _Held(loop.create_future(), asyncio.Event())
            self._all.append(held)
            held.task = asyncio.create_task(held.own(server, max(timeout, self.timeout)))
        return await asyncio.shield(held.ready)

    def _retire(self, server: McpServer, client: Client | None) -> None:
        held = self._open.get(server.label)
        if held is not None and (client is None or _result(held.ready) is client):
            del self._open[server.label]

    async def _bounded(self, server: McpServer, what: str, timeout: float, work: Any) -> Any:
        """`work(client)` on the server's session within `timeout` seconds; failures as
        `McpError`."""
        client = None
        try:
            async with asyncio.timeout(timeout):
                for attempt in range(2):
                    fresh = server.label not in self._open
                    client = await self._client(server, timeout)
                    try:
                        return await work(client)
                    except Exception as exc:
                        if fresh or attempt or not _terminated(exc):
                            raise
                        self._retire(server, client)
        except Exception as exc:
            error = _mcp_error(server, what, timeout, exc)
            if error.error["type"] == "http_error":
                self._retire(server, client)
            raise error from None

    async def list_tools(self, server: McpServer, timeout: float) -> list[dict[str, Any]]:
        """The server's tools as OpenAI's `mcp_list_tools` item lists them."""
        return await self._bounded(server, "the tool listing", timeout, _list_work)

    async def call_tool(
        self, server: McpServer, name: str, arguments: dict[str, Any], timeout: float
    ) -> str:
        """Call `name`; its output text, or `McpError` with the server's error text."""
        work = functools.partial(_call_work, name, arguments)
        return await self._bounded(server, f"the call of {name!r}", timeout, work)

    def aclose(self) -> None:
        """Tell every session to end; they close in the background."""
        loop = asyncio.get_running_loop()
        for held in self._all:
            held.stop.set()
            if held.task is not None and not held.task.done():
                _closing.add(held.task)
                held.task.add_done_callback(_closing.discard)
                loop.call_later(CLOSE_TIMEOUT, held.task.cancel)
        self._open.clear()
        self._all.clear()


def _result(future: asyncio.Future[Client]) -> Client | None:
    """The session's client, once it opened."""
    if future.done() and not future.cancelled() and future.exception() is None:
        return future.result()
    return None


def _terminated(exc: BaseException) -> bool:
    """Did the server reject the request because it ended the session (so it did not run)?"""
    from mcp.shared.exceptions import MCPError

    leaf = _leaf(exc)
    return isinstance(leaf, MCPError) and str(leaf) == "Session terminated"


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


async def _list_work(client: Client) -> list[dict[str, Any]]:
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


def _text(content: list[Any]) -> str:
    """A call result's content as one string (text blocks as they are, others as JSON)."""
    parts = []
    for block in content:
        if getattr(block, "type", None) == "text":
            parts.append(block.text)
        else:
            parts.append(orjson.dumps(block.model_dump(mode="json", exclude_none=True)).decode())
    return "\n".join(parts)


async def _call_work(name: str, arguments: dict[str, Any], client: Client) -> str:
    result = await client.call_tool(name, arguments)
    text = _text(result.content)
    if not text and result.structured_content is not None:
        text = orjson.dumps(result.structured_content).decode()
    if result.is_error:
        content = [block.model_dump(mode="json", exclude_none=True) for block in result.content]
        error = {"type": "mcp_tool_execution_error", "content": content}
        raise McpError(text or f"MCP tool {name!r} failed", error)
    return text
