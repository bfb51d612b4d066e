"""A direct way in for the hottest route: `POST /v1/responses` skips Starlette's router,
exception middleware and per-request handler wrappers (a closure per layer per request
and per `send`), and goes through the same request-id and metrics layers as every other
request. Its `ApiError`s become the same error responses; anything else propagates to the
server-error handler, as from a routed endpoint. Measured in docs/design.md ("Overhead
through respgate")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..protocol.errors import ApiError

Layers = Callable[[ASGIApp], ASGIApp]


class DirectRoute:
    """ASGI middleware: requests for `route` (one path, one method) go to its endpoint
    wrapped in `layers` (the request-id and metrics middleware); the rest to the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        route: Route,
        layers: Layers,
        on_error: Callable[[ApiError], Response],
    ) -> None:
        self.app = app
        self.route = route
        self.path = route.path
        self.methods = route.methods or set()
        self.endpoint: Callable[[Request], Awaitable[Response]] = route.endpoint  # type: ignore[assignment]
        self.on_error = on_error
        self.direct = layers(self._handle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == self.path
            and scope["method"] in self.methods
        ):
            await self.direct(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route  # the metrics label, as the router would set it
        try:
            response = await self.endpoint(Request(scope, receive, send))
        except ApiError as err:
            response = self.on_error(err)
        await response(scope, receive, send)
