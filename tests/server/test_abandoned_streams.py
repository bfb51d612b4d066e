"""Clients that leave a stream early (issue 8, part 1): every run ends, every stream
closes, every stored record is final, and SIGTERM then exits without cancelling tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from tests.support.live import LiveServer, ServerProcess, running
from tests.support.stores import sqlite_engine

# Leaving during generation (`failed`) and after it (`completed`, while the record is saved).
SLOW = {"echo_scenario": "long", "echo_tokens": "200", "echo_delay_ms": "5"}
ENDLESS = {"echo_scenario": "long", "echo_tokens": "2000", "echo_delay_ms": "25"}
BODIES = [
    orjson.dumps({"model": "echo", "input": "hello there", "stream": True}),
    orjson.dumps({"model": "echo", "input": "hello there", "stream": True, "metadata": SLOW}),
]


def abandon(port: int, body: bytes) -> None:
    """POST a streaming request, read one byte of the answer, and close the socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert s.recv(1)


def wait_idle(c: httpx.Client) -> dict[str, Any]:
    """/healthz once no run is in flight and no stream is open (fails after 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        health = c.get("/healthz").json()
        if health["in_flight"] == 0 and health["streams"] == 0:
            return health
        assert time.monotonic() < deadline, f"still busy: {health}"
        time.sleep(0.05)


def statuses(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "respgate.sqlite3") as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM responses GROUP BY status"))


def test_abandoned_store_true_streams_all_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    count = 60
    with running({"RESPGATE_DATA_DIR": str(data)}) as server, server.client() as c:
        for i in range(count):
            abandon(server.port, BODIES[i % 2])
        wait_idle(c)
        found = statuses(data)
        assert sum(found.values()) == count
        assert set(found) <= {"completed", "failed"}, found  # none left in_progress
        assert found.get("failed"), "the slow ones were cut short"
        # The server still serves, and /healthz counts a stream that is open.
        body = {"model": "echo", "input": "x", "stream": True, "metadata": ENDLESS}
        with c.stream("POST", "/v1/responses", json=body) as r:
            assert r.status_code == 200, r.read()
            chunks = r.iter_bytes()  # kept: dropping the iterator closes the connection
            next(chunks)
            health = c.get("/healthz").json()
            assert (health["streams"], health["in_flight"]) == (1, 1), health
        wait_idle(c)


def test_sigterm_after_abandoned_streams_exits_without_cancelling_tasks(tmp_path: Path) -> None:
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with tempfile.TemporaryFile() as log:
        server = ServerProcess(env, "--grace", "3", stderr=log)
        try:
            for i in range(20):
                abandon(server.port, BODIES[i % 2])
            server.proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once it has shut down cleanly
            assert server.proc.wait(30) in (0, -signal.SIGTERM)
        finally:
            server.stop()
        log.seek(0)
        output = log.read().decode(errors="replace")
    assert "running task" not in output, output  # uvicorn: "Cancel N running task(s)"
    assert "Traceback" not in output, output


async def test_websocket_turns_left_early_end(tmp_path: Path) -> None:
    create = {"type": "response.create", "model": "echo", "input": "x", "metadata": ENDLESS}
    with LiveServer(sqlite_engine(tmp_path)) as server:
        async with (
            httpx.AsyncClient(base_url=server.url) as c,
            contextlib.AsyncExitStack() as open_,
        ):
            for _ in range(5):
                ws = await open_.enter_async_context(connect(server.ws_url))
                await ws.send(json.dumps(create))
                await asyncio.wait_for(ws.recv(), 10)  # its turn is streaming
            health = (await c.get("/healthz")).json()
            assert (health["streams"], health["in_flight"]) == (5, 5), health
        # every socket closed mid-turn
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient(base_url=server.url) as c:
            while (health := (await c.get("/healthz")).json())["streams"] or health["in_flight"]:
                assert time.monotonic() < deadline, health
                await asyncio.sleep(0.05)


def test_readers_leaving_a_background_replay_do_not_stop_it(tmp_path: Path) -> None:
    with running({"RESPGATE_DATA_DIR": str(tmp_path / "data")}) as server, server.client() as c:
        body = {"model": "echo", "input": "x", "background": True, "metadata": ENDLESS}
        bg = c.post("/v1/responses", json=body).json()
        replay = f"GET /v1/responses/{bg['id']}?stream=true HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(replay.encode())
                assert s.recv(1)
        deadline = time.monotonic() + 15
        while (health := c.get("/healthz").json())["streams"]:
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
        assert health["in_flight"] == 1  # the response goes on
        assert c.get(f"/v1/responses/{bg['id']}").json()["status"] == "in_progress"
        c.post(f"/v1/responses/{bg['id']}/cancel")
        wait_idle(c)
