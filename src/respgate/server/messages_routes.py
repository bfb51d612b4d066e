"""The Anthropic Messages routes: `POST /v1/messages`, `POST /v1/messages/count_tokens`,
and `HEAD /` (Claude Code's reachability probe).

Same engine, keys, tenants, limits, metrics and logs as `/v1/responses`: a Messages call
is a response run (`engine.create(..., surface=...)`) whose client sees the
`MessagesBuilder`'s events, never stored. The key comes from `x-api-key` or
`Authorization: Bearer`; `anthropic-version` and `anthropic-beta` are accepted and not
needed. Every error on these routes, before or after the first byte, is in Anthropic's
shape (`surfaces/messages/errors.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import Engine
from ..protocol.errors import ApiError, shorten
from ..seal import Sealer
from ..sse import SSEFrames, encode_event
from ..store.keys import ApiKey, ApiKeys
from ..surfaces.messages.builder import MessagesBuilder
from ..surfaces.messages.errors import error_body
from ..surfaces.messages.request import (
    count_tokens,
    parse_count_tokens_request,
    parse_messages_request,
)
from .transport import JSON, Serve

log = logging.getLogger("respgate.server")


# `event: <type>` and the JSON, as Anthropic frames every event; no [DONE] (message_stop or
# error ends the stream)
MESSAGES_FRAMES = SSEFrames(encode_event, b"")


def sealing(sealer: Sealer, tenant: str, provider: str) -> Callable[[dict], str]:
    """What seals a thinking block's carrier: for this tenant and the provider that
    answered (`carry.py`: only that provider gets it back)."""
    return lambda payload: sealer.seal("reasoning", tenant, {"provider": provider, **payload})


def messages_routes(
    engine: Engine,
    keys: ApiKeys,
    *,
    read_json: Callable[[Request], Awaitable[bytes]],
    serve: Serve,
) -> list[Route]:
    """The routes, around the app's engine and keys; `read_json` reads a JSON body
    (content type and size checked), `serve` runs a translated request (stream or fold)."""

    def key_of(request: Request) -> ApiKey:
        api_key = request.headers.get("x-api-key")
        authorization = f"Bearer {api_key}" if api_key else request.headers.get("authorization")
        key = keys.lookup(authorization)
        if key is None:
            raise ApiError(401, "Incorrect or missing API key. Send `x-api-key: <key>`.")
        return key

    def anthropic_errors(
        handler: Callable[[Request], Awaitable[Response]], post_only: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` with every error in Anthropic's shape (a method other than POST too)."""

        async def endpoint(request: Request) -> Response:
            try:
                if post_only and request.method != "POST":
                    path = shorten(request.url.path)
                    raise ApiError(405, f"{request.method} {path}: Method Not Allowed")
                return await handler(request)
            except ApiError as err:
                return JSON(error_body(err), err.status, err.headers or None)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return JSON(error_body(ApiError(500, "The gateway hit an internal error.")), 500)

        return endpoint

    async def create_message(request: Request) -> Response:
        key = key_of(request)
        req = parse_messages_request(await read_json(request))

        def surface(response: dict[str, Any], provider: str) -> MessagesBuilder:
            # thinking blocks are sealed for this tenant and the provider that answered
            return MessagesBuilder(response, sealing(engine.sealer, key.tenant, provider))

        return await serve(
            request, key, req, surface=surface, stream=bool(req.stream), frames=MESSAGES_FRAMES
        )

    async def count_message_tokens(request: Request) -> Response:
        key_of(request)
        req = parse_count_tokens_request(await read_json(request))
        request.state.model = req.model
        engine.registry.check(req.model)  # 404 for a model no route serves
        return JSON({"input_tokens": count_tokens(req)})

    async def probe(request: Request) -> Response:
        return Response(status_code=200)

    async def unknown(request: Request) -> Response:
        raise ApiError(404, f"{request.method} {shorten(request.url.path)}: Not Found")

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/v1/messages", anthropic_errors(create_message), methods=every),
        Route("/v1/messages/count_tokens", anthropic_errors(count_message_tokens), methods=every),
        Route("/v1/messages/{rest:path}", anthropic_errors(unknown, False), methods=every),
        Route("/", probe, methods=["HEAD"]),
    ]
