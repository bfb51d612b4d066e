"""The upstream HTTP client (providers/wire.py) where it differs from the happy path the
other provider tests walk: TLS, bodies without chunking, compressed error bodies, the
connect and total timeouts, a pooled connection the upstream closed, and a response that
is not HTTP. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
import trustme

from respgate.protocol.errors import ApiError
from respgate.providers import wire

from .fake_upstream import FakeUpstream, Reply, fixture
from .support import call_of, drive, request, router_for

TEXT = fixture("chat_completions", "text")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_upstream(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A server that runs `handler` per connection; yields its base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://localhost:{port}/v1"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    return head + await reader.readexactly(length)


async def stream_text(url: str, **opts: object) -> str:
    router = router_for("chat_completions", url, **opts)
    try:
        out = await drive(await router.open("m", call_of(request())))
    finally:
        await router.aclose()
    assert out.response["status"] == "completed", out.response
    return out.text


async def open_error(url: str, **opts: object) -> ApiError:
    router = router_for("chat_completions", url, **opts)
    try:
        with pytest.raises(ApiError) as info:
            await router.open("m", call_of(request()))
    finally:
        await router.aclose()
    return info.value


@pytest.fixture
def ca(monkeypatch: pytest.MonkeyPatch, tmp_path) -> trustme.CA:
    """A CA the client trusts (through SSL_CERT_FILE, read by the default context)."""
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return authority


def server_context(authority: trustme.CA, host: str = "localhost") -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(host).configure_cert(context)
    return context


async def test_https_upstream_streams_and_reuses_its_connection(ca: trustme.CA) -> None:
    async with FakeUpstream(Reply(TEXT), tls=server_context(ca)) as up:
        url = up.url
        router = router_for("chat_completions", url)
        try:
            for _ in range(2):
                out = await drive(await router.open("m", call_of(request())))
                assert out.text == "Hello!"
        finally:
            await router.aclose()
    assert up.connections == 1
    assert url.startswith("https://localhost:")
    assert up.requests[0].headers["host"] == url.split("/")[2]


async def test_https_certificate_for_another_host_is_a_connect_error(ca: trustme.CA) -> None:
    async with FakeUpstream(Reply(TEXT), tls=server_context(ca, "example.org")) as up:
        err = await open_error(up.url)
    assert (err.status, err.code) == (502, "upstream_connect_error")
    assert up.requests == []


async def test_https_untrusted_certificate_is_a_connect_error() -> None:
    async with FakeUpstream(Reply(TEXT), tls=server_context(trustme.CA())) as up:
        err = await open_error(up.url)
    assert (err.status, err.code) == (502, "upstream_connect_error")


async def test_a_body_that_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n" + TEXT)
        await writer.drain()

    async with raw_upstream(handler) as url:
        assert await stream_text(url) == "Hello!"


async def test_a_content_length_body_over_several_writes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(TEXT))
        for i in range(0, len(TEXT), 7):
            writer.write(TEXT[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        await reader.read()

    async with raw_upstream(handler) as url:
        assert await stream_text(url) == "Hello!"


async def test_a_gzip_error_body_is_read_for_its_message() -> None:
    body = gzip.compress(orjson.dumps({"error": {"message": "temperature is too hot"}}))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n"
            % len(body)
            + body
        )
        await writer.drain()
        await reader.read()

    async with raw_upstream(handler) as url:
        err = await open_error(url)
    assert (err.status, err.code) == (400, "upstream_bad_request")
    assert "temperature is too hot" in err.message


async def test_the_request_line_and_headers_on_the_wire() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(TEXT) + TEXT)
        await writer.drain()
        await reader.read()

    async with raw_upstream(handler) as url:
        await stream_text(url)
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    assert headers[b"host"] == url.split("/")[2].encode()
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"authorization"].startswith(b"bearer ")
    assert orjson.loads(body)["stream"] is True


async def test_a_connection_the_upstream_closed_after_a_response_is_not_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(TEXT) + TEXT)
        await writer.drain()  # then closes, without saying `connection: close`

    async with raw_upstream(handler) as url:
        router = router_for("chat_completions", url)
        try:
            for _ in range(3):
                out = await drive(await router.open("m", call_of(request())))
                assert out.text == "Hello!"
                await asyncio.sleep(0.05)
        finally:
            await router.aclose()
    assert connections == 3


async def test_a_silent_tls_handshake_hits_the_connect_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts TCP, never speaks TLS

    async with raw_upstream(handler) as url:
        err = await open_error(url.replace("http:", "https:"), connect_timeout=0.2)
    assert (err.status, err.code) == (504, "upstream_timeout")


async def test_the_total_timeout_bounds_the_wait_for_headers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answers

    async with raw_upstream(handler) as url:
        err = await open_error(url, timeout=0.2)
    assert (err.status, err.code) == (504, "upstream_timeout")


async def test_the_total_timeout_ends_a_stream_that_is_still_talking() -> None:
    async with FakeUpstream(Reply(TEXT, pause_after=len(TEXT) // 2, pause=5)) as up:
        router = router_for("chat_completions", up.url, timeout=0.3)
        try:
            out = await drive(await router.open("m", call_of(request())))
        finally:
            await router.aclose()
    assert out.response["status"] == "failed"
    errors = [e for e in out.events if isinstance(e, dict) and e["type"] == "error"]
    assert [e["code"] for e in errors] == ["upstream_timeout"]
    assert "total timeout" in errors[0]["message"]
    assert out.text == "Hel"


async def test_a_response_that_is_not_http_is_an_upstream_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_upstream(handler) as url:
        err = await open_error(url)
    assert (err.status, err.code) == (502, "upstream_connect_error")


async def test_the_idle_watchdog_ends_the_pending_read_at_once() -> None:
    # stream_idle_timeout closes the connection under a pending read: that read must end
    # then, not when the (much longer) read timeout would have passed
    async with FakeUpstream(Reply(TEXT, stall_after=len(TEXT) // 2)) as up:
        router = router_for("chat_completions", up.url, read_timeout=60, stream_idle_timeout=0.2)
        try:
            stream = await router.open("m", call_of(request()))
            out = await asyncio.wait_for(drive(stream), 10)
        finally:
            await router.aclose()
    errors = [e for e in out.events if isinstance(e, dict) and e["type"] == "error"]
    assert [e["code"] for e in errors] == ["upstream_timeout"]
    assert "0.2 seconds" in errors[0]["message"]


async def test_a_finished_exchange_leaves_no_reference_cycle() -> None:
    """A response, its parser and the parser's callbacks part when the exchange ends (its
    connection pooled, or closed by the upstream): nothing of a stream is left for the
    garbage collector to find, which at 64 streams cost several percent of the CPU."""

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + TEXT)
        await writer.drain()

    async with FakeUpstream(Reply(TEXT)) as up, raw_upstream(closing) as closing_url:
        routers = [router_for("chat_completions", url) for url in (up.url, closing_url)]
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage
        try:
            for router in (*routers, *routers):
                out = await drive(await router.open("m", call_of(request())))
                assert out.text == "Hello!"
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, (wire.Response, wire.Connection))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            for router in routers:
                await router.aclose()
    assert left == []
    assert up.connections == 1  # kept alive
