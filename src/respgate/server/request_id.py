"""The one layer every request goes through (`RequestLayer`):

- `x-request-id`: taken from the client when sane, generated otherwise, returned on
  every response (HTTP, SSE and the WebSocket handshake) and left in
  `scope["state"]["request_id"]` for the handlers (the engine logs it and sends it
  upstream);
- the request counter (`Metrics.count_request`), told each HTTP request's status once
  it has ended.

One layer with one `send` wrapper, not one per concern: it is on the path of every
write of every stream."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..protocol.ids import random_hex

HEADER = b"x-request-id"
MAX_LENGTH = 128
_SANE = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_LENGTH)

Count = Callable[[Scope, int], None]


def request_id_of(scope: Scope) -> str:
    """The client's `x-request-id` if it is 1-128 printable ASCII characters, else a new one."""
    for name, value in scope["headers"]:
        if name == HEADER and _SANE.fullmatch(value):
            return value.decode()
    return random_hex()


class RequestLayer:
    """ASGI middleware: every HTTP and WebSocket request gets a request id; with `count`,
    every HTTP request is counted by its status (500 when it failed before answering)."""

    def __init__(self, app: ASGIApp, count: Count | None = None) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode())
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", ()), header]
                status = message.get("status", 101)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if self.count is not None and scope["type"] == "http":
                self.count(scope, status)
