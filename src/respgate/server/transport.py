"""Transports that drain a `Run`: SSE (streaming) and JSON (the fold of the same events)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..engine import Event, EventSource, Run
from ..protocol.errors import invalid, quote
from ..protocol.lifecycle import REASONING_EVENTS, TERMINAL_EVENTS, ReasoningEvents
from ..sse import KEEPALIVE_FRAME, RESPONSES_FRAMES, SSEFrames
from .edge import ON_DISCONNECT


class JSON(Response):
    """A JSON body (orjson), the one way every route answers with JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


Serve = Callable[..., Awaitable[Response]]
"""`serve(request, key, req, *, surface, stream, frames)`: how another inbound surface's
route runs its translated request: `engine.create(..., surface=...)` with the caller's key,
then the run's SSE stream (framed as `frames` say) or its fold as JSON."""

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


# A request header that picks the raw reasoning event names for its responses (WebSocket:
# on the upgrade request, for every turn of the connection); default: [server].
REASONING_EVENTS_HEADER = "x-respgate-reasoning-events"
# Codex's sticky-routing token: sent back as received (HTTP response, WebSocket upgrade).
TURN_STATE_HEADER = "x-codex-turn-state"


def reasoning_events_of(headers: Mapping[str, str]) -> ReasoningEvents | None:
    """The `x-respgate-reasoning-events` header's mode, None without one (400 if unknown)."""
    value = headers.get(REASONING_EVENTS_HEADER)
    if value is None:
        return None
    if value not in REASONING_EVENTS:
        raise invalid(
            f"Unknown raw reasoning event names {quote(value)}; "
            f"use one of {', '.join(REASONING_EVENTS)}.",
            REASONING_EVENTS_HEADER,
            code="invalid_value",
        )
    return cast(ReasoningEvents, value)


def echoed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers a response sends back: Codex's `x-codex-turn-state`."""
    value = headers.get(TURN_STATE_HEADER)
    return {TURN_STATE_HEADER: value} if value is not None else {}


class Gauge:
    """How many of something are open now: `with gauge:` counts one while inside.
    `/healthz` reads it (and `/metrics` can): the app's `state.streams`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def __enter__(self) -> None:
        self.value += 1

    def __exit__(self, *exc: object) -> None:
        self.value -= 1


class SSEResponse:
    """Streams a run (or a replay) as Server-Sent Events.

    Each wake-up writes everything already emitted in one `send` (coalescing
    without waiting); a comment line keeps the connection alive while the
    model is silent. The writer runs in the request's own task; one watcher task
    waits for the client to leave and aborts the run then (the ASGI server's
    `send` does nothing after a disconnect), so the writer ends with the run.
    """

    def __init__(
        self,
        run: EventSource,
        *,
        keepalive: float,
        headers: dict[str, str] | None = None,
        streams: Gauge | None = None,
        frames: SSEFrames = RESPONSES_FRAMES,
    ) -> None:
        self.run = run
        self.frames = frames
        self.keepalive = keepalive
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        self.headers = SSE_HEADERS + extra
        self.streams = streams or Gauge()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.streams:
            # the edge protocol calls back when the client leaves; elsewhere, a task watches
            on_disconnect = scope.get("extensions", {}).get(ON_DISCONNECT)
            if on_disconnect is not None:
                on_disconnect.append(self._client_left)
                watcher = None
            else:
                watcher = asyncio.create_task(self._watch(receive))
            finished = False
            try:
                await self._write(send)
                finished = True
            except OSError:
                pass  # the connection broke under a write: as a disconnect
            finally:
                if watcher is None:
                    on_disconnect.remove(self._client_left)
                else:
                    watcher.cancel()
                if not finished:  # the write failed (or this request was cancelled)
                    self._client_left()
                self.run.release()

    def _client_left(self) -> None:
        self.run.abort("client_disconnected", "The client disconnected.")

    async def _write(self, send: Send) -> None:
        run = self.run
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        # Let the producer run once before the first write, so the opening events go
        # out with whatever the upstream has already sent (one write fewer per stream).
        await asyncio.sleep(0)
        while await self._send_batch(send, await run.next_batch(self.keepalive)):
            pass

    async def _send_batch(self, send: Send, batch: list[Event] | None) -> bool:
        """Write one batch (None: a keep-alive comment); False once the end went out. Its
        own frame, so an open stream holds no encoded body between writes."""
        if batch is None:
            await send({"type": "http.response.body", "body": KEEPALIVE_FRAME, "more_body": True})
            return True
        body = b"".join([self.frames.encode(e) for e in batch])
        run = self.run
        run.client_first_byte()
        if run.drained:  # the last events and [DONE] go out in one write
            await send(
                {"type": "http.response.body", "body": body + self.frames.end, "more_body": False}
            )
            return False
        await send({"type": "http.response.body", "body": body, "more_body": True})
        return True

    async def _watch(self, receive: Receive) -> None:
        await _watch_disconnect(receive)
        self._client_left()


async def until_disconnect(receive: Receive, write: Coroutine[Any, Any, None]) -> bool:
    """Run `write` (a response's sends) until it ends or the client disconnects, whichever
    comes first: an ASGI server's `send` does not raise after a disconnect, so `receive` is
    watched beside it. True if `write` finished; its failure is raised (an OSError, the
    client gone, is not: False)."""
    writer = asyncio.create_task(write)
    watcher = asyncio.create_task(_watch_disconnect(receive))
    try:
        await asyncio.wait((writer, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, watcher):
            task.cancel()
        await asyncio.gather(writer, watcher, return_exceptions=True)
    if writer.cancelled():
        return False
    failure = writer.exception()
    if failure is not None and not isinstance(failure, OSError):
        raise failure
    return failure is None


async def _watch_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def fold(run: Run) -> dict[str, Any]:
    """The non-streaming result: the Response carried by the run's terminal event, or
    another surface's answer (its builder's `result()`)."""
    final: dict[str, Any] | None = None
    while batch := await run.next_batch():
        if run.surface is not None:
            continue
        for event in batch:
            if event["type"] in TERMINAL_EVENTS:
                final = event["response"]
    if run.surface is not None:
        return run.surface.result()
    assert final is not None, "a run always ends with a terminal event"
    return final
