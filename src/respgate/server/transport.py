"""Transports that drain a `Run`: SSE (streaming) and JSON (the fold of the same events)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import Receive, Scope, Send

from ..engine import Run
from ..protocol.lifecycle import TERMINAL_EVENTS
from ..sse import DONE_FRAME, KEEPALIVE_FRAME, encode_event

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class SSEResponse:
    """Streams a run as Server-Sent Events.

    Each wake-up writes everything already emitted in one `send` (coalescing
    without waiting); a comment line keeps the connection alive while the
    model is silent; a client disconnect aborts the run at once.
    """

    def __init__(
        self, run: Run, *, keepalive: float, headers: dict[str, str] | None = None
    ) -> None:
        self.run = run
        self.keepalive = keepalive
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        self.headers = SSE_HEADERS + extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = self.run
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            # Let the producer run once before the first write, so the opening events go
            # out with whatever the upstream has already sent (one write fewer per stream).
            await asyncio.sleep(0)
            while True:
                batch = await run.next_batch(self.keepalive)
                if batch is None:
                    await send(
                        {"type": "http.response.body", "body": KEEPALIVE_FRAME, "more_body": True}
                    )
                    continue
                body = b"".join(encode_event(e) for e in batch)
                run.client_first_byte()
                if run.drained:  # the last events and [DONE] go out in one write
                    await send(
                        {
                            "type": "http.response.body",
                            "body": body + DONE_FRAME,
                            "more_body": False,
                        }
                    )
                    return
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except OSError:
            run.abort("client_disconnected", "The client disconnected.")
        finally:
            run.release()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.run.abort("client_disconnected", "The client disconnected.")
                return


async def fold(run: Run) -> dict[str, Any]:
    """The non-streaming result: the Response carried by the run's terminal event."""
    final: dict[str, Any] | None = None
    while batch := await run.next_batch():
        for event in batch:
            if event["type"] in TERMINAL_EVENTS:
                final = event["response"]
    assert final is not None, "a run always ends with a terminal event"
    return final
