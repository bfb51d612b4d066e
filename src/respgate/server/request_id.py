"""`x-request-id`: taken from the client when sane, generated otherwise, returned on
every response (HTTP, SSE and the WebSocket handshake) and left in
`scope["state"]["request_id"]` for the handlers (the engine logs it and sends it
upstream)."""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128
_SANE = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_LENGTH)


def request_id_of(scope: Scope) -> str:
    """The client's `x-request-id` if it is 1-128 printable ASCII characters, else a new one."""
    for name, value in scope["headers"]:
        if name == HEADER and _SANE.fullmatch(value):
            return value.decode()
    return secrets.token_hex(16)


class RequestIds:
    """ASGI middleware: every HTTP and WebSocket request gets a request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode())

        async def sending(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, sending)
