"""A real uvicorn on 127.0.0.1: incremental delivery, disconnects, graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import threading
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


def test_sigterm_lets_streams_within_the_grace_finish(tmp_path: Path) -> None:
    """README: on SIGTERM, streams in flight finish within `--grace`; the rest end with
    `error` (server_shutdown) + `response.failed` + `[DONE]`. One stream of each, at once."""
    short = {**SLOW, "echo_tokens": "20", "echo_delay_ms": "50"}  # about 1 s in all
    long = {**SLOW, "echo_tokens": "2000"}  # about 50 s: beyond the grace
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env, "--grace", "6") as server:
        received = {"short": b"", "long": b""}
        started = {name: threading.Event() for name in received}

        def stream(name: str, metadata: dict[str, str]) -> None:
            body = {"model": "echo", "input": "x", "stream": True, "metadata": metadata}
            with server.client() as c, c.stream("POST", "/v1/responses", json=body) as r:
                for chunk in r.iter_bytes():
                    received[name] += chunk
                    if b"output_text.delta" in received[name]:
                        started[name].set()

        threads = [
            threading.Thread(target=stream, args=("short", short), daemon=True),
            threading.Thread(target=stream, args=("long", long), daemon=True),
        ]
        for thread in threads:
            thread.start()
        for name, event in started.items():
            assert event.wait(20), f"the {name} stream did not start"
        server.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a stream did not end after SIGTERM"
        finished = parse_sse(received["short"])
        assert_valid_stream(finished)
        assert finished[-2]["type"] == "response.completed"
        assert finished[-2]["response"]["usage"]["output_tokens"] == 20
        cut = parse_sse(received["long"])
        assert_valid_stream(cut)
        assert [e["type"] if isinstance(e, dict) else e for e in cut[-3:]] == [
            "error",
            "response.failed",
            "[DONE]",
        ]
        assert cut[-3]["code"] == "server_shutdown"
        assert server.proc.wait(30) in (0, -signal.SIGTERM)
