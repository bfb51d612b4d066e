"""Limits at the HTTP edge (server/edge.py) over raw sockets on 127.0.0.1: header size and
count (431), header and body deadlines (408), the connection cap. Small limits keep the tests
short; every wait is bounded by a socket timeout or a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.server.edge import EVICT_AFTER_SECONDS, EdgeLimits
from tests.support.live import LiveServer, running

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
SLOW = {"echo_scenario": "long", "echo_tokens": "40", "echo_delay_ms": "25"}  # ~1 s


def serve(**limits: Any) -> LiveServer:
    return LiveServer(Engine(ProviderRegistry()), limits=EdgeLimits(**limits))


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with serve() as server:
        yield server


def open_socket(server: LiveServer, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length body (the edge's answers and /healthz)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def assert_error(body: bytes, code: str) -> None:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"


def assert_closed(sock: socket.socket) -> None:
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(1) == b""


def healthz(server: LiveServer) -> int:
    return httpx.get(f"{server.url}/healthz", timeout=5).status_code


def test_oversized_header_is_431_and_closed(live: LiveServer) -> None:
    with open_socket(live) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == 431
        assert headers["connection"] == "close"
        assert_error(body, "request_header_fields_too_large")
        assert_closed(sock)


def test_header_limit_counts_the_request_line(live: LiveServer) -> None:
    """A 1 MiB URL is headers too."""
    with open_socket(live) as sock:
        sock.sendall(b"GET /healthz?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 431


def test_headers_just_under_the_limit_are_served() -> None:
    with serve(max_header_bytes=4096) as server, open_socket(server) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n"
        pad = 4096 - len(request % b"")
        sock.sendall(request % (b"p" * pad))
        assert read_response(sock)[0] == 200
        sock.sendall(request % (b"p" * (pad + 1)))
        assert read_response(sock)[0] == 431


def test_too_many_headers_is_431(live: LiveServer) -> None:
    with open_socket(live) as sock:
        fields = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        status, _, body = read_response(sock)
        assert status == 431
        assert b"100 header fields" in body
    with open_socket(live) as sock:  # 99 + Host = 100 is fine
        fields = b"".join(b"X-H%d: v\r\n" % i for i in range(99))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        assert read_response(sock)[0] == 200


def test_healthz_stays_responsive_while_large_headers_upload(live: LiveServer) -> None:
    """Clients uploading endless headers get 431 after 64 KiB; others are served meanwhile."""
    stop = threading.Event()
    answers: list[bytes] = []

    def upload() -> None:
        chunk = b"a" * 65536
        while not stop.is_set():
            with open_socket(live, timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
                try:
                    while not stop.is_set():
                        sock.sendall(chunk)
                except OSError:
                    pass
                try:
                    answers.append(sock.recv(64))
                except OSError:
                    answers.append(b"")

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        statuses = [healthz(live) for _ in range(20)]
    finally:
        stop.set()
        uploader.join(10)
    assert statuses == [200] * 20
    assert any(a.startswith(b"HTTP/1.1 431") for a in answers), answers[:3]


def trickle_until_answer(sock: socket.socket, data: bytes, limit: float = 10) -> bytes:
    """Send `data` a byte per 50 ms (cycling) until the server answers or closes."""
    deadline = time.monotonic() + limit
    sock.settimeout(0.05)
    i = 0
    while time.monotonic() < deadline:
        try:
            sock.send(data[i % len(data) : i % len(data) + 1])
        except OSError:
            break
        i += 1
        try:
            answer = sock.recv(65536)
            sock.settimeout(5)
            return answer + (sock.recv(65536) if b"\r\n\r\n" not in answer else b"")
        except TimeoutError:
            continue
    sock.settimeout(5)
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def test_pipelined_requests_are_answered_in_order(live: LiveServer) -> None:
    # one write holding three requests: uvicorn queues the later two (edge.Pipeline)
    missing = b"GET /no-such-path HTTP/1.1\r\nHost: x\r\n\r\n"
    with open_socket(live) as sock:
        sock.sendall(HEALTHZ + missing + HEALTHZ)
        data = b""
        while data.count(b"HTTP/1.1 ") < 3 or not data.endswith((b"}", b"\n")):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {data!r}"
            data += chunk
    statuses = [int(part.split(b" ", 1)[0]) for part in data.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [200, 404, 200]


def test_trickled_headers_are_408() -> None:
    with serve(header_timeout=0.5) as server, open_socket(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = trickle_until_answer(sock, b"X-Slow: abcdefgh\r\n")
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert_error(answer.partition(b"\r\n\r\n")[2], "request_timeout")


def test_silent_connection_is_closed() -> None:
    with serve(header_timeout=0.3) as server, open_socket(server, timeout=5) as sock:
        assert_closed(sock)


def test_trickled_body_is_408() -> None:
    with serve(body_timeout=0.5) as server, open_socket(server) as sock:
        body = b'{"model":"echo","input":"hello there"}'
        sock.sendall(
            b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(body) * 100)
        )
        answer = trickle_until_answer(sock, body)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert_error(answer.partition(b"\r\n\r\n")[2], "request_timeout")
        assert_closed(sock)
        assert healthz(server) == 200


def test_a_response_may_outlast_the_deadlines() -> None:
    """The deadlines cover receiving a request, not answering it: a ~1 s stream on a
    kept-alive connection with 0.3 s deadlines completes, and so does the next request."""
    with serve(header_timeout=0.3, body_timeout=0.3) as server:
        body = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}
        with httpx.Client(base_url=server.url, timeout=10) as client:
            with client.stream("POST", "/v1/responses", json=body) as r:
                text = "".join(r.iter_text())
            assert "response.completed" in text
            assert client.get("/healthz").status_code == 200


async def test_websocket_outlives_the_deadlines() -> None:
    with serve(header_timeout=0.3, body_timeout=0.3) as server:
        async with connect(server.ws_url, open_timeout=5) as ws:
            await asyncio.sleep(0.8)
            await ws.send(json.dumps({"type": "response.create", "model": "echo", "input": "hi"}))
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if event["type"] in ("response.completed", "response.failed", "error"):
                    break
        assert event["type"] == "response.completed"


def test_at_the_cap_a_normal_client_evicts_a_slow_one() -> None:
    with serve(max_connections=4) as server:
        slow = [open_socket(server) for _ in range(10)]
        try:
            for sock in slow:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            time.sleep(EVICT_AFTER_SECONDS + 0.2)  # a connection that just arrived is never evicted
            for _ in range(5):
                assert healthz(server) == 200
        finally:
            for sock in slow:
                sock.close()


def test_beyond_the_cap_without_slow_clients_is_503_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connections busy with a response are never evicted: a new one is refused with 503."""
    caplog.set_level(logging.WARNING, logger="respgate.edge")
    body = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}
    with serve(max_connections=2) as server:
        clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(2)]
        streams = [c.stream("POST", "/v1/responses", json=body) for c in clients]
        try:
            for s in streams:
                s.__enter__()  # headers received: both responses are in progress
            statuses = []
            for _ in range(6):
                with open_socket(server) as sock:
                    sock.sendall(HEALTHZ)
                    status, headers, answer = read_response(sock)
                    statuses.append(status)
            assert statuses == [503] * 6
            assert headers["retry-after"] == "1"
            error = json.loads(answer)["error"]
            assert (error["type"], error["code"]) == ("server_error", "server_busy")
        finally:
            for s in streams:
                s.__exit__(None, None, None)
            for c in clients:
                c.close()
        lines = [r.getMessage() for r in caplog.records if r.name == "respgate.edge"]
        assert "connection limit 2 reached: 1 connection(s) refused" in lines[0]
        assert len(lines) < 6, lines  # one line per interval, not one per connection


def test_respgate_serve_reads_the_server_table(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text(
        "[store]\nenabled = false\n[server]\nmax_headers = 3\nmax_header_bytes = 2048\n"
    )
    with running({}, "--config", str(config)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        for request, status in [
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", 200),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nA: " + b"a" * 2048 + b"\r\n\r\n", 431),
        ]:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.settimeout(10)
                sock.sendall(request)
                assert read_response(sock)[0] == status


LIMIT_PROBE = """
import logging, resource, sys
from respgate.server.edge import EdgeLimits, server_config
resource.setrlimit(resource.RLIMIT_NOFILE, (512, 1024))
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
server_config(None, host="127.0.0.1", port=0, limits=EdgeLimits(max_connections=MAX))
print("soft", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.parametrize(("max_connections", "wanted"), [(0, 1024), (400, 1024), (1000, 2064)])
def test_descriptor_limit_fits_max_connections_or_says_how(
    max_connections: int, wanted: int
) -> None:
    """The soft limit goes to the hard one; a max_connections needing more raises the hard
    limit where the OS allows, else a warning names the `ulimit -n` to set."""
    out = subprocess.run(
        [sys.executable, "-c", LIMIT_PROBE.replace("MAX", str(max_connections))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    soft = int(out.rsplit("soft ", 1)[1])
    if soft >= wanted:
        assert "WARNING" not in out
    else:
        assert soft == 1024
        assert f"WARNING open-file limit 1024 is below the {wanted}" in out
        assert f"ulimit -n {wanted}" in out
    assert f"INFO open-file limit {soft}, max_connections" in out
