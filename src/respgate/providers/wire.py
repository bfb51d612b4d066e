"""The upstream HTTP/1.1 client: an asyncio `Protocol` around `httptools` (the parser
uvicorn already uses), a keep-alive pool per origin, TLS, and three timeouts.

Built for the one thing providers do: POST a JSON body and read a streamed answer. One
`data_received` per socket read hands the body bytes of every HTTP chunk in it to the
reader at once (`Response.read()` returns them joined), so a read that carries fifty SSE
events costs one wake-up and one join, not fifty trips through a stream reader. Measured
against aiohttp in docs/design.md ("Upstream HTTP client").

Errors: `TimeoutError` when a timeout passes, `OSError` for everything else that breaks a
connection (refused, DNS, TLS, a reset, an unparsable or truncated response:
`UpstreamConnectionError`). Timeouts: `connect` bounds opening the connection (TLS
included), `read` the silence between two socket reads (the response headers included),
`total` the whole exchange; None (or 0) is no limit.
"""

from __future__ import annotations

import asyncio
import copy
import math
import ssl
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from ..deadlines import Deadlines, Entry

IDLE_SECONDS = 15.0  # a pooled connection idle for longer is not reused
PAUSE_BYTES = 1 << 20  # stop reading the socket while this much body waits for the reader
USER_AGENT = b"respgate"


class UpstreamConnectionError(ConnectionError):
    """The connection broke, or the upstream sent something that is not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None = None
    read: float | None = None
    total: float | None = None


Origin = tuple[str, str, int]  # scheme, host, port


class Connection(asyncio.Protocol):
    """One upstream connection; it carries one exchange at a time (`Response`)."""

    __slots__ = ("_response", "closed", "idle_since", "origin", "transport")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._response: Response | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self._response
        if response is None:  # bytes nobody asked for: the connection cannot be reused
            self.close()
            return
        response.received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._response is not None:
            self._response.lost(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """The answer to one request: `status` and `headers` (lower-case names) once `start()`
    returned, then the body through `read()`. `close()` drops the connection; `release()`
    gives a fully read one back to the pool."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_deadline",
        "_decompress",
        "_error",
        "_head_done",
        "_keep_alive",
        "_last_read",
        "_loop",
        "_parser",
        "_paused",
        "_pool",
        "_timeouts",
        "_waiter",
        "_watchdog",
        "complete",
        "got_bytes",
        "headers",
        "status",
    )  # fmt: skip

    def __init__(self, pool: UpstreamClient, conn: Connection, timeouts: Timeouts) -> None:
        self._pool = pool
        self._conn = conn
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._last_read = self._loop.time()
        self._deadline = self._last_read + timeouts.total if timeouts.total else None
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._head_done = False
        self.complete = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._watchdog: Entry | None = None
        self._decompress: zlib._Decompress | None = None
        self.got_bytes = False
        conn._response = self
        self._arm()

    # -- httptools callbacks (inside data_received)

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._head_done = True
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "deflate"):
            self._decompress = zlib.decompressobj(47 if encoding == "gzip" else zlib.MAX_WBITS)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self._keep_alive = self._parser.should_keep_alive()  # only valid right here
        self._disarm()

    # -- the connection's side

    def received(self, data: bytes) -> None:
        self.got_bytes = True
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamConnectionError(f"invalid HTTP from the upstream: {exc}"))
            self._conn.close()
            return
        if self._buffered > PAUSE_BYTES and not self._paused and self._conn.transport:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self.complete:
            if self._head_done and self._ends_at_close():
                self.complete = True  # a body delimited by the end of the connection
            else:
                why = f" ({type(exc).__name__})" if exc else ""
                self._fail(UpstreamConnectionError(f"the upstream closed the connection{why}"))
        self._wake()

    def _ends_at_close(self) -> bool:
        headers = self.headers
        return (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )

    def _fail(self, error: BaseException) -> None:
        """Keep the exchange's failure; readers raise copies of it. Raised itself, it would
        carry a traceback whose frames hold this response: a reference cycle."""
        if self._error is None:
            self._error = error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _arm(self) -> None:
        """The read/total watchdog: one timer per response, re-armed only when it fires
        (a socket read just records its time), not a timeout per wait."""
        read, deadline = self._timeouts.read, self._deadline
        if not read and deadline is None:
            return
        now = self._loop.time()
        due = math.inf
        if read:  # body still waiting for the reader: the reader is behind, not the upstream
            due = (now if self._chunks else self._last_read) + read
        if deadline is not None:
            due = min(due, deadline)
        if now < due:  # on the loop's shared heap: no loop timer per response
            self._watchdog = Deadlines.for_loop(self._loop).call_at(due, Response._arm, self)
        else:
            self._watchdog = None
            self._fail(TimeoutError())
            self._wake()

    def _disarm(self) -> None:
        if self._watchdog is not None:
            Deadlines.for_loop(self._loop).cancel(self._watchdog)
            self._watchdog = None

    async def _wait(self) -> None:
        """Until the connection brings something (or fails, or the watchdog fires)."""
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- the reader's side

    @property
    def overdue(self) -> bool:
        """The total timeout has passed."""
        return self._deadline is not None and self._loop.time() >= self._deadline

    async def start(self) -> None:
        while not self._head_done:
            if self._error is not None:
                raise copy.copy(self._error)  # never the one kept: see `_fail`
            await self._wait()

    async def read(self) -> bytes:
        """The body bytes received since the last call (waiting for some); b"" at the end."""
        while True:
            if self._chunks:
                chunks, self._chunks, self._buffered = self._chunks, [], 0
                if self._paused and self._conn.transport:
                    self._paused = False
                    self._conn.transport.resume_reading()
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if self._decompress is not None:
                    data = self._decompress.decompress(data)
                    if not data:
                        continue
                return data
            if self.complete:
                return b""
            if self._error is not None:
                raise copy.copy(self._error)  # never the one kept: see `_fail`
            await self._wait()

    async def read_body(self, limit: int) -> bytes:
        """The rest of the body, at most `limit` bytes of it."""
        out = bytearray()
        while len(out) < limit and (data := await self.read()):
            out += data
        return bytes(out[:limit])

    def close(self) -> None:
        """Drop the connection; a read waiting on it ends with `UpstreamConnectionError`."""
        self._disarm()
        self._let_go()
        self._conn.close()
        if not self.complete:
            self._fail(UpstreamConnectionError("the connection was closed"))
            self._wake()

    def release(self) -> None:
        conn = self._conn
        if self._keep_alive and not conn.closed:
            self._let_go()
            self._pool.put(conn)
        else:
            self.close()

    def _let_go(self) -> None:
        """Part from the connection and the parser, which hold this response (the parser
        its callbacks): no reference cycle is left for the garbage collector to find."""
        self._conn._response = None
        self._parser = None


class UpstreamClient:
    """The keep-alive pool every provider shares (one per router); `aclose()` closes it."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._drains: set[asyncio.Task[None]] = set()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def put(self, conn: Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.origin, []).append(conn)

    def _take(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        fresh_after = asyncio.get_running_loop().time() - IDLE_SECONDS
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since > fresh_after:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        scheme, host, port = origin
        tls = self._ssl_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(
                lambda: Connection(origin), host, port, ssl=tls,
                server_hostname=host if tls else None,
            )  # fmt: skip
        return conn

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> Response:
        """Send the request and wait for the response headers."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamConnectionError(f"not an http(s) URL: {url}")
        port = parts.port or (443 if scheme == "https" else 80)
        origin = (scheme, parts.hostname, port)
        host = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {target} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = "\r\n".join(head).encode("latin-1") + (
            b"\r\nuser-agent: " + USER_AGENT + b"\r\naccept-encoding: identity\r\n\r\n" + body
        )
        async with asyncio.timeout(timeouts.total or None):
            conn = self._take(origin)
            if conn is not None:
                response = await self._exchange(conn, request, timeouts)
                if response is not None:
                    return response  # else the reused connection was stale: one new one
            conn = await self._connect(origin, timeouts.connect or None)
            response = await self._exchange(conn, request, timeouts)
            if response is None:
                raise UpstreamConnectionError("the upstream closed the connection")
            return response

    async def _exchange(
        self, conn: Connection, request: bytes, timeouts: Timeouts
    ) -> Response | None:
        """Write the request on `conn` and read the headers; None if the connection closed
        before a single response byte (a kept-alive connection the upstream had let go)."""
        response = Response(self, conn, timeouts)
        assert conn.transport is not None
        conn.transport.write(request)
        try:
            await response.start()
        except UpstreamConnectionError:
            response.close()
            if not response.got_bytes:
                return None
            raise
        except BaseException:
            response.close()
            raise
        return response

    def release_later(self, response: Response) -> None:
        """Give a finished response's connection back to the pool once its body's last
        bytes (the chunked terminator after `[DONE]`) arrive; at most `DRAIN_SECONDS`."""
        if response.complete:
            response.release()
            return
        task = asyncio.get_running_loop().create_task(_drain(response))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def aclose(self) -> None:
        for task in list(self._drains):
            task.cancel()
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


DRAIN_SECONDS = 2.0


async def _drain(response: Response) -> None:
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while await response.read():
                pass
        response.release()
    except (TimeoutError, OSError, asyncio.CancelledError):
        response.close()
