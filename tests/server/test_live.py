"""A real uvicorn on 127.0.0.1: incremental delivery, disconnects, graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.support.live import LiveServer, running
from tests.support.oracle import assert_valid_stream, parse_sse


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with LiveServer(Engine(ProviderRegistry())) as server:
        yield server


SLOW = {"echo_scenario": "long", "echo_tokens": "40", "echo_delay_ms": "25"}


async def test_deltas_arrive_incrementally(live: LiveServer) -> None:
    body = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}
    received = b""
    first_delta_at = None
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=30) as c,
        c.stream("POST", "/v1/responses", json=body) as r,
    ):
        async for chunk in r.aiter_bytes():
            received += chunk
            if first_delta_at is None and b"response.output_text.delta" in received:
                first_delta_at = received.count(b"response.output_text.delta\n")
                # The first delta is in hand while the reply is still being produced.
                assert b"response.completed" not in received
    assert first_delta_at is not None and first_delta_at < 40
    events = parse_sse(received)
    assert_valid_stream(events)


async def test_client_disconnect_stops_generation(live: LiveServer) -> None:
    body = {
        "model": "echo",
        "input": "x",
        "stream": True,
        "metadata": {**SLOW, "echo_tokens": "2000"},
    }
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as c:
        async with c.stream("POST", "/v1/responses", json=body) as r:
            async for chunk in r.aiter_bytes():
                if b"output_text.delta" in chunk:
                    (run,) = list(live.engine.runs)
                    assert not run.task.done()
                    break
        deadline = time.monotonic() + 5  # the run lives on the server thread's loop: poll it
        while not (run.task and run.task.done()):
            assert time.monotonic() < deadline, "generation did not stop after the disconnect"
            await asyncio.sleep(0.01)
    assert run.response["status"] == "failed"
    assert run.response["error"]["message"] == "The client disconnected."
    assert run.response["usage"] is None or run.response["usage"]["output_tokens"] < 2000


def test_sigterm_ends_open_streams_with_failed_and_done(tmp_path: Path) -> None:
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env, "--grace", "0.5") as server:
        body = {
            "model": "echo",
            "input": "x",
            "stream": True,
            "metadata": {**SLOW, "echo_tokens": "2000"},
        }
        received = b""
        signalled = False
        with server.client() as c, c.stream("POST", "/v1/responses", json=body) as r:
            for chunk in r.iter_bytes():
                received += chunk
                if b"output_text.delta" in received and not signalled:
                    server.proc.send_signal(signal.SIGTERM)
                    signalled = True
        events = parse_sse(received)
        assert_valid_stream(events)
        assert events[-2]["type"] == "response.failed"
        assert events[-3]["code"] == "server_shutdown"
        # uvicorn re-raises the captured SIGTERM once its graceful shutdown is done
        assert server.proc.wait(15) in (0, -signal.SIGTERM)
