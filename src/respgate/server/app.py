"""The ASGI app factory: HTTP in, engine calls, HTTP out. No protocol logic here."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from ..console import Tap, console_routes
from ..engine import Engine, EventSource, Run
from ..metrics import CONTENT_TYPE, Metrics
from ..protocol.conversations import (
    parse_conversation_create,
    parse_conversation_update,
    parse_items_create,
)
from ..protocol.errors import ApiError, invalid, invalid_api_key, shorten
from ..protocol.items import parse_include
from ..protocol.request import CreateRequest, parse_compact_request, parse_create_request
from ..protocol.surface import SurfaceFactory
from ..sse import RESPONSES_FRAMES, SSEFrames
from ..store.base import ListQuery, ResponseQuery
from ..store.keys import ApiKey, ApiKeys
from . import encoding
from .chat_routes import chat_routes
from .direct import DirectRoute, Gateway
from .messages_routes import messages_routes
from .request_id import RequestLayer
from .transport import JSON, Gauge, SSEResponse, echoed_headers, fold, reasoning_events_of
from .websocket import CONNECTION_LIMIT_SECONDS, websocket_endpoint

log = logging.getLogger("respgate.server")

DEFAULT_MAX_BODY = 32 * 1024 * 1024
RATE_LIMIT_HEADERS = [
    f"x-ratelimit-{what}-{name}"
    for name in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
] + ["retry-after"]


def error_response(err: ApiError) -> Response:
    return JSON(err.body(), status_code=err.status, headers=err.headers or None)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decoded as its `Content-Encoding` says; at most `limit` bytes as sent and
    as decoded (413)."""
    too_large = ApiError(413, f"The request body exceeds {limit} bytes.", code="request_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        # the client left, or the edge answered 408 (server/edge.py): this answer goes nowhere
        raise ApiError(400, "The request body was not completed.", code="incomplete_body") from None
    return encoding.decoded(b"".join(chunks), request.headers.get(encoding.HEADER), limit)


def require_json(request: Request) -> None:
    """A body must be declared `application/json` (any parameters, such as a charset), as
    OpenAI requires: 400 `unsupported_content_type` otherwise, the body unread."""
    declared = request.headers.get("content-type")
    if declared is not None and declared.partition(";")[0].strip().lower() == "application/json":
        return
    said = f"the header 'Content-Type: {shorten(declared)}'" if declared else "no Content-Type"
    raise invalid(
        f"Unsupported content type: this API method only accepts 'application/json' "
        f"requests, but you sent {said}. Send `Content-Type: application/json`.",
        code="unsupported_content_type",
    )


def warning_headers(warnings: list[str]) -> dict[str, str]:
    """`x-respgate-warning` with every warning, ASCII only (a header value)."""
    if not warnings:
        return {}
    text = "; ".join(warnings).encode("ascii", "replace").decode()
    return {"x-respgate-warning": text}


def query_int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"`{name}` must be an integer.", name) from None


def query_include(request: Request) -> frozenset[str]:
    """`include` from the query (`include=a&include=b`, or `include[]=a` as some clients send)."""
    values = request.query_params.getlist("include") + request.query_params.getlist("include[]")
    return parse_include(values)


def page_query(request: Request) -> dict[str, Any]:
    """A list endpoint's query: `limit`, `order`, `after` and `include`."""
    return {
        "limit": query_int(request, "limit", 20),
        "order": request.query_params.get("order", "desc"),
        "after": request.query_params.get("after") or None,
        "include": query_include(request),
    }


RESPONSE_STATUSES = ("queued", "in_progress", "completed", "incomplete", "failed", "cancelled")


def list_query(request: Request) -> ListQuery:
    """A list's query: a page (`limit`, `order`, `after`) created in `created_after` <=
    created_at < `created_before` (Unix seconds)."""
    page = page_query(request)
    return ListQuery(
        limit=page["limit"],
        order=page["order"],
        after=page["after"],
        created_after=query_int(request, "created_after", None),
        created_before=query_int(request, "created_before", None),
    )


def response_query(request: Request) -> ResponseQuery:
    """`GET /v1/responses`'s query: `list_query`'s, and the filters `model` and `status`."""
    status = request.query_params.get("status") or None
    if status is not None and status not in RESPONSE_STATUSES:
        raise invalid(f"`status` must be one of {', '.join(RESPONSE_STATUSES)}.", "status")
    model = request.query_params.get("model") or None
    return ResponseQuery(**dataclasses.asdict(list_query(request)), model=model, status=status)


def create_app(
    engine: Engine,
    *,
    keys: ApiKeys | None = None,
    cors_origins: list[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    keepalive_seconds: float = 15.0,
    websocket_max_seconds: float = CONNECTION_LIMIT_SECONDS,
    metrics: Metrics | None = None,
    console: bool = False,
) -> Starlette:
    """Build the app around an engine (and whatever store/providers it holds).
    With `keys`, every /v1 request needs `Authorization: Bearer <key>`; the key's
    tenant is the only one whose responses the request can see. WebSocket mode on
    /v1/responses closes each connection after `websocket_max_seconds`.
    With `metrics` (also registered as the engine's observer by the caller), every
    HTTP request is counted and `GET /metrics` serves them (an admin key is needed
    when keys are configured); without, /metrics is a 404. With `console`, the web console
    is served at /console (its tap registered as the engine's observer)."""
    api_keys = keys or ApiKeys()
    streams = Gauge()  # client streams open: SSE responses and WebSocket turns

    def sse(
        source: EventSource,
        headers: dict[str, str] | None = None,
        frames: SSEFrames = RESPONSES_FRAMES,
    ) -> Response:
        response = SSEResponse(
            source, keepalive=keepalive_seconds, headers=headers, streams=streams, frames=frames
        )
        return response  # type: ignore[return-value]

    def key_of(request: Request) -> ApiKey:
        key = api_keys.lookup(request.headers.get("authorization"))
        if key is None:
            raise invalid_api_key()
        return key

    def tenant_of(request: Request) -> str:
        return key_of(request).tenant

    async def json_body(request: Request) -> bytes:
        require_json(request)
        return await read_body(request, max_body_bytes)

    async def create_response(request: Request) -> Response:
        key = key_of(request)
        tenant = key.tenant
        req = parse_create_request(await json_body(request))
        request.state.model = req.model  # for the request counter's label
        request_id = request.state.request_id
        reasoning_events = reasoning_events_of(request.headers)
        echoed = echoed_headers(request.headers)
        if req.background:
            queued = await engine.create_background(
                req,
                tenant=tenant,
                key=key,
                request_id=request_id,
                reasoning_events=reasoning_events,
            )
            headers = {**warning_headers(req.warnings), **queued.headers, **echoed}
            if req.stream:
                replay = await engine.replay(queued.response["id"], tenant=tenant)
                return sse(replay, headers)
            return JSON(queued.response, headers=headers)
        run = await engine.create(
            req, tenant=tenant, key=key, request_id=request_id, reasoning_events=reasoning_events
        )
        return await answer(request, run, stream=bool(req.stream))

    async def answer(
        request: Request, run: Run, *, stream: bool, frames: SSEFrames = RESPONSES_FRAMES
    ) -> Response:
        """A started run's answer: its stream (written as `frames` say), or its fold."""
        headers = {
            **warning_headers(run.warnings),
            **run.headers,
            **echoed_headers(request.headers),
        }
        if stream:
            return sse(run, headers, frames)
        try:
            response = await fold(run)
            run.client_first_byte()
        finally:
            run.release()
        return JSON(response, headers=headers)

    async def serve(
        request: Request,
        key: ApiKey,
        req: CreateRequest,
        *,
        surface: SurfaceFactory,
        stream: bool,
        frames: SSEFrames,
    ) -> Response:
        """Another inbound surface's translated request, run and answered (`Serve`)."""
        request.state.model = req.model  # for the request counter's label
        run = await engine.create(
            req, tenant=key.tenant, key=key, request_id=request.state.request_id, surface=surface
        )
        return await answer(request, run, stream=stream, frames=frames)

    async def compact_response(request: Request) -> Response:
        key = key_of(request)
        body = parse_compact_request(await json_body(request))
        request.state.model = body.model
        compacted = await engine.compact(
            body, tenant=key.tenant, key=key, request_id=request.state.request_id
        )
        return JSON(compacted)

    async def list_responses(request: Request) -> Response:
        key = key_of(request)
        query = response_query(request)
        return JSON(await engine.list_responses(None if key.admin else key.tenant, query))

    async def retrieve_response(request: Request) -> Response:
        tenant = tenant_of(request)
        response_id = request.path_params["response_id"]
        if request.query_params.get("stream", "").lower() == "true":
            after = query_int(request, "starting_after", None)
            replay = await engine.replay(response_id, tenant=tenant, starting_after=after)
            return sse(replay)
        include = query_include(request)
        return JSON(await engine.retrieve(response_id, tenant=tenant, include=include))

    async def delete_response(request: Request) -> Response:
        tenant = tenant_of(request)
        return JSON(await engine.delete(request.path_params["response_id"], tenant=tenant))

    async def cancel_response(request: Request) -> Response:
        tenant = tenant_of(request)
        return JSON(await engine.cancel(request.path_params["response_id"], tenant=tenant))

    async def list_input_items(request: Request) -> Response:
        tenant = tenant_of(request)
        page = await engine.input_items(
            request.path_params["response_id"], tenant=tenant, **page_query(request)
        )
        return JSON(page)

    # ------------------------------------------------------------ conversations
    conversations = engine.conversations

    async def create_conversation(request: Request) -> Response:
        tenant = tenant_of(request)
        if request.headers.get("content-type") is None and request.headers.get(
            "content-length", "0"
        ) in ("", "0"):
            body = b""  # `POST /v1/conversations` with no body at all: an empty conversation
        else:
            body = await json_body(request)
        items, metadata = parse_conversation_create(body)
        request_items = await engine.resolve_items(items, tenant, "items")
        return JSON(await conversations.create(request_items, metadata, tenant))

    async def list_conversations(request: Request) -> Response:
        key = key_of(request)
        query = list_query(request)
        return JSON(
            await conversations.list_conversations(None if key.admin else key.tenant, query)
        )

    async def retrieve_conversation(request: Request) -> Response:
        tenant = tenant_of(request)
        return JSON(await conversations.retrieve(request.path_params["conversation_id"], tenant))

    async def update_conversation(request: Request) -> Response:
        tenant = tenant_of(request)
        metadata = parse_conversation_update(await json_body(request))
        conversation_id = request.path_params["conversation_id"]
        return JSON(await conversations.update(conversation_id, tenant, metadata))

    async def delete_conversation(request: Request) -> Response:
        tenant = tenant_of(request)
        return JSON(await conversations.delete(request.path_params["conversation_id"], tenant))

    async def create_conversation_items(request: Request) -> Response:
        tenant = tenant_of(request)
        include = query_include(request)
        items = parse_items_create(await json_body(request))
        items = await engine.resolve_items(items, tenant, "items")
        conversation_id = request.path_params["conversation_id"]
        return JSON(await conversations.add_items(conversation_id, tenant, items, include))

    async def list_conversation_items(request: Request) -> Response:
        tenant = tenant_of(request)
        page = await conversations.list_items(
            request.path_params["conversation_id"], tenant, **page_query(request)
        )
        return JSON(page)

    async def retrieve_conversation_item(request: Request) -> Response:
        tenant = tenant_of(request)
        item = await conversations.retrieve_item(
            request.path_params["conversation_id"],
            request.path_params["item_id"],
            tenant,
            query_include(request),
        )
        return JSON(item)

    async def delete_conversation_item(request: Request) -> Response:
        tenant = tenant_of(request)
        conversation = await conversations.delete_item(
            request.path_params["conversation_id"], request.path_params["item_id"], tenant
        )
        return JSON(conversation)

    async def list_models(request: Request) -> Response:
        tenant_of(request)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "respgate"}
            for name in engine.registry.models()
        ]
        return JSON({"object": "list", "data": data})

    async def healthz(request: Request) -> Response:
        # in_flight: runs generating; streams: client streams open (SSE + WebSocket turns);
        # pid: the process that answered (one of several with `serve --workers`)
        health = {"in_flight": len(engine.runs), "streams": streams.value, "pid": os.getpid()}
        return JSON({"status": "ok", **health})

    async def readyz(request: Request) -> Response:
        problem = await engine.ready()
        if problem is not None:
            return JSON({"status": "unavailable", "reason": problem}, status_code=503)
        return JSON({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        assert metrics is not None
        if not key_of(request).admin:
            raise ApiError(403, "Reading metrics needs an admin key ([[keys]] admin = true).",
                           code="admin_key_required")  # fmt: skip
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = (
            "not_found"
            if exc.status_code == 404
            else "method_not_allowed"
            if exc.status_code == 405
            else None
        )
        message = f"{request.method} {shorten(request.url.path)}: {exc.detail}"
        return error_response(ApiError(exc.status_code, message, code=code))

    def server_error(request: Request, exc: Exception) -> ApiError:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ApiError(500, "The gateway hit an internal error.", code="server_error")

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        error = server_error(request, exc)
        # outside the request layer: the header is added here
        error.headers = {"x-request-id": getattr(request.state, "request_id", "")}
        return error_response(error)

    # The request layer (request id and request counter): every request goes through it.
    count = None if metrics is None else metrics.count_request
    middleware = [Middleware(RequestLayer, count=count)]
    create_route = Route("/v1/responses", create_response, methods=["POST"])
    direct = None
    if cors_origins:  # every request takes the routed way
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=cors_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["x-respgate-warning", "x-request-id", *RATE_LIMIT_HEADERS],
            )
        )
    else:  # `POST /v1/responses` before Starlette, through the same layer (direct.py)
        direct = DirectRoute(
            create_route,
            layer=functools.partial(RequestLayer, count=count),
            on_error=error_response,
            on_unexpected=server_error,
        )

    def console_routes_for(enabled: bool) -> list[BaseRoute]:
        if not enabled:
            return []
        tap = Tap()
        engine.observers.add(tap)
        return console_routes(engine, tap, key_of)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        yield
        await engine.shutdown(grace=0)

    app = Gateway(
        direct=direct,
        lifespan=lifespan,
        routes=[
            create_route,
            Route("/v1/responses", list_responses, methods=["GET"]),
            WebSocketRoute(
                "/v1/responses",
                websocket_endpoint(
                    engine, api_keys, max_seconds=websocket_max_seconds, streams=streams
                ),
            ),
            Route("/v1/responses/compact", compact_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
            Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
            Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
            Route("/v1/conversations", create_conversation, methods=["POST"]),
            Route("/v1/conversations", list_conversations, methods=["GET"]),
            Route("/v1/conversations/{conversation_id}", retrieve_conversation, methods=["GET"]),
            Route("/v1/conversations/{conversation_id}", update_conversation, methods=["POST"]),
            Route("/v1/conversations/{conversation_id}", delete_conversation, methods=["DELETE"]),
            Route(
                "/v1/conversations/{conversation_id}/items",
                create_conversation_items,
                methods=["POST"],
            ),
            Route(
                "/v1/conversations/{conversation_id}/items",
                list_conversation_items,
                methods=["GET"],
            ),
            Route(
                "/v1/conversations/{conversation_id}/items/{item_id}",
                retrieve_conversation_item,
                methods=["GET"],
            ),
            Route(
                "/v1/conversations/{conversation_id}/items/{item_id}",
                delete_conversation_item,
                methods=["DELETE"],
            ),
            *chat_routes(engine, key_of=key_of, json_body=json_body, serve=serve),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *([Route("/metrics", metrics_endpoint, methods=["GET"])] if metrics else []),
            *messages_routes(engine, api_keys, read_json=json_body, serve=serve),
            *console_routes_for(console),
        ],
        middleware=middleware,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.state.engine = engine
    app.state.streams = streams
    return app
