"""A direct way in for the hottest route: `POST /v1/responses` is served before
Starlette sees the request (no exception middleware, router or per-request handler
wrappers: a closure per layer per request and per `send`), through the same request
layer as every other request (`RequestLayer`: request id and request counter). Its
`ApiError`s become the same error responses, and anything else the same 500 as from a
routed endpoint. Measured in docs/design.md ("Overhead through respgate")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..protocol.errors import ApiError

Layer = Callable[[ASGIApp], ASGIApp]


class DirectRoute:
    """One route (one path, one method) served by its endpoint inside `layer`."""

    def __init__(
        self,
        route: Route,
        *,
        layer: Layer,
        on_error: Callable[[ApiError], Response],
        on_unexpected: Callable[[Request, Exception], ApiError],
    ) -> None:
        self.route = route
        self.path = route.path
        self.methods = route.methods or set()
        self.endpoint: Callable[[Request], Awaitable[Response]] = route.endpoint  # type: ignore[assignment]
        self.on_error = on_error
        self.on_unexpected = on_unexpected
        self.handle = layer(self._handle)

    def matches(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["path"] == self.path
            and scope["method"] in self.methods
        )

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route  # the metrics label, as the router would set it
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except ApiError as err:
            response = self.on_error(err)
        except Exception as exc:  # as Starlette's server-error middleware does: a 500, raised on
            await self.on_error(self.on_unexpected(request, exc))(scope, receive, send)
            raise
        await response(scope, receive, send)


class Gateway(Starlette):
    """The ASGI app: Starlette, except that the direct route (when there is one) is
    served first, past Starlette's middleware stack."""

    def __init__(self, *args: Any, direct: DirectRoute | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if direct is not None and direct.matches(scope):
            scope["app"] = self
            await direct.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
