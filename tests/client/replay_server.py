"""A small real HTTP server (uvicorn in a thread on 127.0.0.1, random port) that
replays scripted replies to `POST /v1/responses`, chosen by the request's `model`."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from respgate.sse import DONE_FRAME, encode_event


@dataclass
class Script:
    chunks: list[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    delay: float = 0.0  # seconds between chunks
    reset: bool = False  # break the connection after the last chunk
    hang: float = 0.0  # seconds to keep the body open after the last chunk
    gate: threading.Event | None = None  # wait for it before sending chunk `gate_at`
    gate_at: int = 0


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ReplayServer:
    scripts: dict[str, Script] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""

    def script(self, model: str, chunks: Iterable[bytes], **options: Any) -> str:
        self.scripts[model] = Script(list(chunks), **options)
        return model

    def events(
        self, model: str, events: Iterable[dict[str, Any]], *, done: bool = True, **options: Any
    ) -> str:
        """Script a well-framed stream of `events` (one frame each), then `[DONE]`."""
        frames = [encode_event(e) for e in events]
        return self.script(model, [*frames, DONE_FRAME] if done else frames, **options)

    async def handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.seen.append(Seen(dict(request.headers), body))
        script = self.scripts[body["model"]]
        if script.content_type != "text/event-stream" or not body.get("stream"):
            return Response(b"".join(script.chunks), script.status, media_type=script.content_type)

        async def replay() -> Any:
            for n, chunk in enumerate(script.chunks):
                gated = script.gate is not None and n == script.gate_at
                if gated and not await asyncio.to_thread(script.gate.wait, 10):
                    raise ConnectionResetError("the client did not see the events sent so far")
                yield chunk
                if script.delay:
                    await asyncio.sleep(script.delay)
            if script.hang:
                await asyncio.sleep(script.hang)
            if script.reset:
                raise ConnectionResetError("scripted reset")

        return StreamingResponse(replay(), script.status, media_type=script.content_type)


def start(server: ReplayServer) -> uvicorn.Server:
    app = Starlette(routes=[Route("/v1/responses", server.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    server.base_url = f"http://127.0.0.1:{port}/v1"
    return uv
