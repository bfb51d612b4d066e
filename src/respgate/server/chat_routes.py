"""`POST /v1/chat/completions`: the Chat Completions surface on the same engine, keys,
tenants, limits, metrics and logs as `/v1/responses` (`surfaces/chat`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import Engine
from ..store.keys import ApiKey
from ..surfaces.chat.builder import CHAT_FRAMES, chat_surface
from ..surfaces.chat.request import parse_chat_request, to_create_request
from .transport import Answer


def chat_routes(
    engine: Engine,
    *,
    key_of: Callable[[Request], ApiKey],
    json_body: Callable[[Request], Awaitable[bytes]],
    answer: Answer,
) -> list[Route]:
    """The Chat Completions routes, for `create_app` to mount."""

    async def create_chat_completion(request: Request) -> Response:
        key = key_of(request)
        chat = parse_chat_request(await json_body(request))
        req = to_create_request(chat)
        request.state.model = req.model  # for the request counter's label
        run = await engine.create(
            req,
            tenant=key.tenant,
            key=key,
            request_id=request.state.request_id,
            surface=chat_surface(chat.include_usage),
        )
        return await answer(request, run, stream=bool(chat.stream), frames=CHAT_FRAMES)

    return [Route("/v1/chat/completions", create_chat_completion, methods=["POST"])]
