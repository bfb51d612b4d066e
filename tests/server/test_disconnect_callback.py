"""The edge protocol tells a response that its client left (server/edge.py,
`ON_DISCONNECT`), which is how the SSE writer learns it without a task per request: over a
real uvicorn with respgate's protocol, a raw ASGI app and raw sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from respgate.server.edge import ON_DISCONNECT, EdgeLimits, server_config
from tests.support.live import free_port

REQUEST = b"GET /%s HTTP/1.1\r\nhost: t\r\n\r\n"


class Held:
    """Per path: `hold` answers one chunk and stays open; `done` answers and completes."""

    def __init__(self) -> None:
        self.left: dict[str, threading.Event] = {}
        self.extension_seen: dict[str, bool] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].strip("/")
        callbacks = scope.get("extensions", {}).get(ON_DISCONNECT)
        self.extension_seen[path] = callbacks is not None
        left = self.left.setdefault(path, threading.Event())
        if callbacks is not None:
            callbacks.append(left.set)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "done":
            await send({"type": "http.response.body", "body": b"bye", "more_body": False})
            return
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await asyncio.sleep(30)


@pytest.fixture
def server() -> Iterator[tuple[Held, int]]:
    app, port = Held(), free_port()
    config = server_config(app, host="127.0.0.1", port=port, limits=EdgeLimits(),
                           log_level="warning", lifespan="off")  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield app, port
    srv.should_exit = True
    thread.join(10)


def exchange(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(REQUEST % path.encode())
        return s.recv(4096)  # the headers and the first chunk; then the client leaves


def test_a_client_leaving_mid_response_runs_the_callbacks(server) -> None:
    app, port = server
    assert b"hello" in exchange(port, "hold")
    assert app.extension_seen["hold"]
    assert app.left["hold"].wait(5), "the disconnect callback did not run"


def test_a_completed_response_does_not_run_them(server) -> None:
    app, port = server
    assert b"bye" in exchange(port, "done")
    time.sleep(0.3)  # the connection is closed by now
    assert app.extension_seen["done"]
    assert not app.left["done"].is_set()


async def test_without_the_extension_a_watcher_task_notices_the_client_leaving() -> None:
    # another ASGI server (or the in-process test transport): no ON_DISCONNECT list in the
    # scope, so the writer watches `receive()` and stops the source when it says disconnect
    from respgate.engine import Replay
    from respgate.server.transport import SSEResponse

    async def forever():
        yield {"type": "response.in_progress", "sequence_number": 0}
        await asyncio.sleep(60)

    source = Replay(forever())
    left = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            left.set()  # the client leaves after the first chunk

    await asyncio.wait_for(SSEResponse(source, keepalive=30)({"type": "http"}, receive, send), 10)
    assert source.task is not None and source.task.done()
    assert sent[-1]["more_body"] is False  # the writer ended the body once the source did
