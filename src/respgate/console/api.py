"""The console's routes: the page (`/console`, static files, no build step) and its JSON
endpoints under `/console/api`, each useful on its own (docs/console.md).

Same keys and tenant rules as the API: a tenant key sees its own runs and responses only;
an admin key sees every tenant's (and names one with `?tenant=` to open or delete a
stored response of it). Another tenant's run or response is a 404, like an unknown id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..check import check_url
from ..engine import Engine
from ..observe import RunInfo
from ..protocol.errors import ApiError, invalid, not_found, quote
from ..server.transport import JSON, SSE_HEADERS, until_disconnect
from ..sse import encode_frame
from ..store.base import ACTIVE_STATUSES
from ..store.keys import ApiKey
from .tap import Tap, Tapped, summary

STATIC = Path(__file__).parent / "static"
KEEPALIVE_SECONDS = 15.0
COALESCE_SECONDS = 0.1  # live list updates are sent at most this often
# The Response fields that repeat the request that made it (shown as "the request").
REQUEST_FIELDS = (
    "model", "instructions", "previous_response_id", "conversation", "tools", "tool_choice",
    "reasoning", "text", "temperature", "top_p", "max_output_tokens", "max_tool_calls",
    "parallel_tool_calls", "truncation", "metadata", "store", "background", "service_tier",
)  # fmt: skip
SECRET_KEYS = frozenset(
    {"authorization", "api_key", "apikey", "headers", "password", "secret", "access_token"}
)


def redact(value: Any) -> Any:
    """`value` with secrets removed (an MCP tool's `authorization` and `headers`, ...) and
    sealed blobs shortened; everything else as it was."""
    if isinstance(value, dict):
        return {
            k: "[removed]"
            if k.lower() in SECRET_KEYS
            else "[sealed]"
            if k == "encrypted_content" and isinstance(v, str)
            else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class Frames:
    """An SSE response written from `frames`; it stops when the client leaves."""

    def __init__(self, frames: AsyncGenerator[bytes, None]) -> None:
        self.frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def write() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            async for frame in self.frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await until_disconnect(receive, write())
        finally:
            await self.frames.aclose()  # leaves `tap.watching()`


def wants_stream(request: Request) -> bool:
    return request.query_params.get("stream", "").lower() == "true"


def own_url(request: Request) -> str:
    """This server's /v1, by the address it listens on (never the request's Host header:
    a client must not make the server send its requests elsewhere)."""
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


def console_routes(
    engine: Engine, tap: Tap, key_of: Callable[[Request], ApiKey]
) -> list[BaseRoute]:
    """The console's routes; `tap` is registered as the engine's observer by the caller."""

    def sees(key: ApiKey, tenant: str) -> bool:
        return key.admin or key.tenant == tenant

    def tenant_for(request: Request, key: ApiKey) -> str:
        """The tenant whose stored response is meant: the key's, or `?tenant=` for an admin."""
        named = request.query_params.get("tenant")
        return named if named is not None and key.admin else key.tenant

    def live(key: ApiKey) -> dict[str, Any]:
        infos = {r.response_id: r.info for r in engine.runs} | {
            rid: t.info for rid, t in tap.runs.items()
        }
        runs = [summary(i) for i in infos.values() if sees(key, i.tenant)]
        runs.sort(key=lambda r: r["started_at"], reverse=True)
        return {"object": "list", "data": runs}

    def tapped(key: ApiKey, response_id: str) -> Tapped:
        found = tap.runs.get(response_id)
        if found is None or not sees(key, found.info.tenant):
            raise not_found(
                f"No run with id {quote(response_id)} was watched (the console records runs "
                "only while it is open).",
                "run_not_found",
            )
        return found

    def timeline(t: Tapped, start: int = 0) -> list[dict[str, Any]]:
        return [
            {"index": i, "t": ms, "event": redact(e)}
            for i, (ms, e) in enumerate(t.events[start:], start)
        ]

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def live_endpoint(request: Request) -> Response:
        key = key_of(request)
        if not wants_stream(request):
            return JSON(live(key))

        async def frames() -> AsyncGenerator[bytes, None]:
            with tap.watching():
                seen = tap.version
                yield encode_frame("live", live(key))
                while not tap.closed:
                    if await tap.changed(seen, KEEPALIVE_SECONDS):
                        await asyncio.sleep(COALESCE_SECONDS)
                        seen = tap.version
                        yield encode_frame("live", live(key))
                    else:
                        yield b": keep-alive\n\n"

        return Frames(frames())  # type: ignore[return-value]

    async def run_events(request: Request) -> Response:
        key = key_of(request)
        found = tapped(key, request.path_params["response_id"])
        if not wants_stream(request):
            body = {"run": summary(found.info), "events": timeline(found),
                    "dropped": found.dropped, "verdict": found.verdict()}  # fmt: skip
            return JSON(body)

        async def frames() -> AsyncGenerator[bytes, None]:
            with tap.watching():
                sent = 0
                while True:
                    seen = tap.version
                    done = found.done  # read before the events: none can follow a done run
                    entries = timeline(found, sent)
                    sent += len(entries)
                    for entry in entries:
                        yield encode_frame("event", entry)
                    if done or tap.closed:
                        yield encode_frame("run", summary(found.info))
                        yield encode_frame("verdict", found.verdict())
                        return
                    if not await tap.changed(seen, KEEPALIVE_SECONDS):
                        yield b": keep-alive\n\n"

        return Frames(frames())  # type: ignore[return-value]

    async def stored(request: Request) -> Response:
        key = key_of(request)
        tenant = tenant_for(request, key)
        response_id = request.path_params["response_id"]
        response = await engine.retrieve(response_id, tenant=tenant)
        items = await engine.input_items(response_id, tenant=tenant, limit=100, order="asc")
        body: dict[str, Any] = {
            "response": redact(response),
            "request": redact(
                {k: response[k] for k in REQUEST_FIELDS if response.get(k) is not None}
                | {"input": items["data"]}
            ),
            "input_more": items["has_more"],
            "tenant": tenant,
        }
        found = tap.runs.get(response_id)
        if found is not None and found.info.tenant == tenant:
            body["events"], body["verdict"] = timeline(found), found.verdict()
        elif response.get("background") and response["status"] not in ACTIVE_STATUSES:
            replay = await engine.replay(response_id, tenant=tenant)
            events = []
            while batch := await replay.next_batch():
                events += batch
            info = RunInfo(tenant, response["model"], "background", response_id=response_id)
            info.finished_at = info.accepted_at
            logged = Tapped(info, [(None, e) for e in events])  # no times in a log
            body["events"], body["verdict"] = timeline(logged), logged.verdict()
        return JSON(body)

    async def delete_stored(request: Request) -> Response:
        key = key_of(request)
        tenant = tenant_for(request, key)
        deleted = await engine.delete(request.path_params["response_id"], tenant=tenant)
        return JSON(deleted)

    async def check(request: Request) -> Response:
        key = key_of(request)
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            raise invalid("The body is not valid JSON.", code="invalid_json") from None
        if not isinstance(body, dict):
            raise invalid("The body must be a JSON object.")
        url, model = body.get("url") or None, body.get("model") or "echo"
        if not isinstance(model, str):
            raise invalid("`model` must be a string.", "model")
        if url is None:  # this server, with the caller's own key
            url = own_url(request)
            token = (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        elif not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid("`url` must be an http(s) URL.", "url")
        elif not key.admin:
            raise ApiError(403, "Checking another server needs an admin key.",
                           code="admin_key_required")  # fmt: skip
        else:
            token = body.get("key") if isinstance(body.get("key"), str) else ""
        report = await asyncio.to_thread(check_url, url, model=model, key=token or None)
        return JSON(report.to_json())

    return [
        Route("/console", index, methods=["GET"]),
        Route("/console/", index, methods=["GET"]),
        Route("/console/api/live", live_endpoint, methods=["GET"]),
        Route("/console/api/runs/{response_id}/events", run_events, methods=["GET"]),
        Route("/console/api/responses/{response_id}", stored, methods=["GET"]),
        Route("/console/api/responses/{response_id}", delete_stored, methods=["DELETE"]),
        Route("/console/api/check", check, methods=["POST"]),
        Mount("/console/static", StaticFiles(directory=STATIC), name="console-static"),
    ]
