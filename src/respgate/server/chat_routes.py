"""`/v1/chat/completions`: the Chat Completions surface on the same engine, keys, tenants,
limits, metrics and logs as `/v1/responses` (`surfaces/chat`).

`POST /v1/chat/completions` runs a chat call; a call made with `store: true` is then served
as OpenAI serves stored completions: `GET /v1/chat/completions` (list), `GET`, `POST`
(metadata) and `DELETE /v1/chat/completions/{id}`, `GET .../{id}/messages`. A stored chat
completion is a stored Response marked with the chat surface (`surfaces/chat/stored.py`),
the caller's tenant's only; a Response made through `/v1/responses` is not one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import Engine
from ..protocol.conversations import parse_conversation_update
from ..protocol.errors import ApiError, invalid
from ..protocol.response import list_object
from ..store.base import ResponseQuery, check_page
from ..store.keys import ApiKey
from ..surfaces.chat.builder import CHAT_FRAMES, chat_surface, completion_of
from ..surfaces.chat.request import parse_chat_request, to_create_request
from ..surfaces.chat.stored import (
    CHAT_SURFACE,
    completion_not_found,
    response_id_of,
    stored_messages,
)
from .transport import JSON, Serve

METADATA_PARAM = re.compile(r"metadata\[(.+)\]")
MAX_ITEMS_PAGE = 100  # the store's largest page of input items


def _page_args(request: Request) -> tuple[int, str, str | None]:
    """`limit` (1-100, default 20), `order` (default `asc`, as OpenAI's) and `after`."""
    raw = request.query_params.get("limit") or "20"
    if not raw.isdigit():
        raise invalid("`limit` must be an integer between 1 and 100.", "limit")
    limit, order = int(raw), request.query_params.get("order") or "asc"
    check_page(limit, order)
    return limit, order, request.query_params.get("after") or None


def _response_after(after: str) -> str:
    """The response id behind the list's `after` (400 for one that is no completion id)."""
    try:
        return response_id_of(after)
    except ApiError:
        raise invalid(f"`after` must be a chat completion id, got {after!r}.", "after") from None


def chat_routes(
    engine: Engine,
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

    async def stored(request: Request) -> tuple[str, str, dict[str, Any]]:
        """The caller's tenant, the path's completion id and its stored Response (404 for
        an unknown id, another tenant's, or a response not made by a chat call)."""
        tenant = key_of(request).tenant
        completion = request.path_params["completion_id"]
        try:
            response = await engine.retrieve(response_id_of(completion), tenant=tenant)
        except ApiError as err:
            raise (completion_not_found(completion) if err.status == 404 else err) from None
        if response.get("surface") != CHAT_SURFACE:
            raise completion_not_found(completion)
        return tenant, completion, response

    async def list_completions(request: Request) -> Response:
        tenant = key_of(request).tenant
        limit, order, after = _page_args(request)
        metadata = tuple(
            (found.group(1), value)
            for name, value in request.query_params.multi_items()
            if (found := METADATA_PARAM.fullmatch(name))
        )
        query = ResponseQuery(
            limit=limit,
            order=order,  # type: ignore[arg-type]
            after=None if after is None else _response_after(after),
            model=request.query_params.get("model") or None,
            surface=CHAT_SURFACE,
            metadata=metadata,
            with_output=True,
        )
        page = await engine.list_responses(tenant, query)
        return JSON(list_object([completion_of(r) for r in page["data"]], page["has_more"]))

    async def retrieve_completion(request: Request) -> Response:
        _, _, response = await stored(request)
        return JSON(completion_of(response))

    async def update_completion(request: Request) -> Response:
        tenant, _, response = await stored(request)
        metadata = parse_conversation_update(await json_body(request))
        updated = await engine.update_metadata(response["id"], metadata, tenant=tenant)
        return JSON(completion_of(updated))

    async def delete_completion(request: Request) -> Response:
        tenant, completion, response = await stored(request)
        await engine.delete(response["id"], tenant=tenant)
        return JSON({"id": completion, "object": "chat.completion.deleted", "deleted": True})

    async def list_messages(request: Request) -> Response:
        tenant, completion, response = await stored(request)
        limit, order, after = _page_args(request)
        items: list[dict[str, Any]] = []
        cursor = None
        while True:  # every input item, oldest first: messages do not map 1:1 onto items
            page = await engine.input_items(
                response["id"], tenant=tenant, limit=MAX_ITEMS_PAGE, order="asc", after=cursor
            )
            items += page["data"]
            if not page["has_more"]:
                break
            cursor = page["last_id"]
        messages = [{"id": f"{completion}-{i}", **m} for i, m in enumerate(stored_messages(items))]
        if order == "desc":
            messages.reverse()
        ids = [m["id"] for m in messages]
        start = ids.index(after) + 1 if after in ids else 0
        if after is not None and after not in ids:
            raise invalid(f"No message with id {after!r} in this completion.", "after")
        shown = messages[start : start + limit]
        return JSON(list_object(shown, start + limit < len(messages)))

    one = "/v1/chat/completions/{completion_id}"
    return [
        Route("/v1/chat/completions", create_chat_completion, methods=["POST"]),
        Route("/v1/chat/completions", list_completions, methods=["GET"]),
        Route(one, retrieve_completion, methods=["GET"]),
        Route(one, update_completion, methods=["POST"]),
        Route(one, delete_completion, methods=["DELETE"]),
        Route(one + "/messages", list_messages, methods=["GET"]),
    ]
