"""`POST /v1/chat/completions`: the Chat Completions surface on the same engine, keys,
tenants, limits, metrics and logs as `/v1/responses` (`surfaces/chat`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store.keys import ApiKey
from ..surfaces.chat.builder import CHAT_FRAMES, chat_surface
from ..surfaces.chat.request import parse_chat_request, to_create_request
from .transport import Serve


def chat_routes(
    *,
    key_of: Callable[[Request], ApiKey],
    json_body: Callable[[Request], Awaitable[bytes]],
    serve: Serve,
) -> list[Route]:
    """The Chat Completions routes, for `create_app` to mount."""

    async def create_chat_completion(request: Request) -> Response:
        key = key_of(request)
        chat = parse_chat_request(await json_body(request))
        return await serve(
            request,
            key,
            to_create_request(chat),
            surface=chat_surface(chat.include_usage),
            stream=bool(chat.stream),
            frames=CHAT_FRAMES,
        )

    return [Route("/v1/chat/completions", create_chat_completion, methods=["POST"])]
