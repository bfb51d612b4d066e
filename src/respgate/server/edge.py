"""The HTTP edge: uvicorn's httptools protocol with limits on what a client may hold.

uvicorn bounds neither the request line + headers (size, count) nor the time to send them or
the body, and accepts connections until the descriptor limit. `GuardedProtocol` adds:

- `max_header_bytes` / `max_headers`: counted while the headers arrive, before httptools
  buffers them; over -> 431 and close (a 100 MB header costs 64 KiB of work, not 12 s);
- `header_timeout`: from connection (or message) start to the end of the headers -> 408;
- `body_timeout`: from the end of the headers to the end of the body -> 408 if the app has
  not answered yet, else close;
- `max_connections`: beyond it a new connection evicts the connection that has been waiting
  longest for a request (no request in progress: slow headers or an idle keep-alive) if that
  one has waited `EVICT_AFTER_SECONDS`, else it is answered 503 and closed; one log line per
  interval, however many.

It also tells a response that its client left without a task per request waiting on
`receive()`: each request's scope carries a list under `scope["extensions"][ON_DISCONNECT]`,
and the callbacks in it run when the connection is lost before the response completed (the
SSE writer registers one; other servers, and the in-process test transport, have no such
list and the writer watches `receive()` instead).

It subclasses uvicorn internals (`HttpToolsProtocol`), hence the pinned uvicorn range in
pyproject.toml; tests/server/test_edge.py drives every limit over real sockets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..protocol.errors import ApiError

log = logging.getLogger("respgate.edge")

# Descriptors kept free beyond the client connections: one upstream socket per client in the
# worst case, plus the store, logs and the listening socket.
RESERVED_DESCRIPTORS = 64
LOG_INTERVAL_SECONDS = 10.0
EVICT_AFTER_SECONDS = 0.5  # an idle connection younger than this is never evicted
ON_DISCONNECT = "respgate.on_disconnect"  # the scope extension: callbacks for a lost client


@dataclass(frozen=True)
class EdgeLimits:
    max_header_bytes: int = 65536
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 0  # 0 = derived from the descriptor limit


def raise_descriptor_limit(wanted: int = 0) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, or to `wanted` when that is higher and
    the process may raise its hard limit (root / CAP_SYS_RESOURCE); return the soft limit now
    in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return soft
    for target in (max(hard, wanted), hard):
        if soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
            return target
        except (ValueError, OSError):
            continue
    return soft


def descriptors_for(max_connections: int) -> int:
    """The descriptors `max_connections` clients need: one upstream socket each, plus the reserve."""
    return 2 * max_connections + RESERVED_DESCRIPTORS


def derive_max_connections(descriptors: int) -> int:
    """Half of what is left after the reserve: each client may need an upstream socket."""
    return max(1, (descriptors - RESERVED_DESCRIPTORS) // 2)


@dataclass
class Edge:
    """Per-server state shared by every connection: the limits, the connections that wait
    for a request (oldest first: the eviction order) and the cap's log counters."""

    limits: EdgeLimits
    max_connections: int
    idle: dict[GuardedProtocol, float] = field(default_factory=dict)  # -> loop.time() since
    refused: int = 0
    evicted: int = 0
    _flush: asyncio.TimerHandle | None = field(default=None, repr=False)

    def note(self, loop: asyncio.AbstractEventLoop, *, evicted: bool) -> None:
        """Count a refusal or eviction; log at once, then at most one line per interval."""
        if evicted:
            self.evicted += 1
        else:
            self.refused += 1
        if self._flush is None:
            self._report()
            self._flush = loop.call_later(LOG_INTERVAL_SECONDS, self._report_later, loop)

    def _report_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.refused or self.evicted:
            self._report()
            self._flush = loop.call_later(LOG_INTERVAL_SECONDS, self._report_later, loop)
        else:
            self._flush = None

    def _report(self) -> None:
        log.warning(
            "connection limit %d reached: %d connection(s) refused with 503, %d evicted while "
            "still sending headers (raise [server] max_connections or the descriptor limit)",
            self.max_connections,
            self.refused,
            self.evicted,
        )
        self.refused = self.evicted = 0


def error_bytes(status: int, message: str, code: str, headers: tuple[bytes, ...] = ()) -> bytes:
    """A complete `connection: close` HTTP/1.1 response with an OpenAI error body."""
    body = orjson.dumps(ApiError(status, message, code=code).body())
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            *headers,
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class LeanEvent:
    """`asyncio.Event`'s API (wait, set, clear, is_set) over a list of waiters.

    Every `asyncio.Event` allocates a `deque` (~0.4 KiB traced, even empty) and uvicorn makes
    two per connection (flow control's writable event, each request cycle's message event),
    each with one waiter at most; a list does the same job in 56 bytes.
    """

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[bool]] = []

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            self._waiters.remove(waiter)


class Pipeline(list):  # type: ignore[type-arg]
    """uvicorn's queue of pipelined requests as a list (it only uses appendleft, pop and
    truth): a `deque` is ~0.7 KiB even empty, and a connection almost never queues one."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body limits and the connection cap."""

    # Our state lives in slots: uvicorn's protocol already sets 28 attributes, and the 12 of
    # ours on top would pass CPython's 30-key limit for a shared-key instance dict, turning
    # every connection's dict into a full one (~1.6 KiB instead of ~0.3 KiB plus 8 bytes per
    # slot; measured in docs/design.md, issue 11 part 5).
    __slots__ = (
        "awaiting_headers",
        "edge",
        "expires_at",
        "expiry",
        "header_bytes",
        "header_count",
        "limits",
        "request_started",
        "timer",
        "timer_at",
        "too_many_headers",
        "upgraded",
    )

    def __init__(self, *args: Any, edge: Edge, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = Pipeline()  # type: ignore[assignment]
        self.edge = edge
        self.limits = edge.limits
        self.awaiting_headers = True  # between the end of a message and the end of the next headers
        self.header_bytes = 0
        self.header_count = 0
        self.request_started = False  # the current request has begun arriving
        self.too_many_headers = False
        # one deadline at a time (headers, then body); moving it costs no timer call unless
        # it comes earlier than the armed timer, which re-arms itself when it fires early
        self.expiry: Callable[[], None] | None = None
        self.expires_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.upgraded = False

    # connection cap

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow._is_writable_event = LeanEvent(self.flow._is_writable_event.is_set())
        self._await_headers()
        self._arm(self.limits.header_timeout, self._header_timeout)
        now = self.loop.time()
        self.edge.idle[self] = now
        if len(self.connections) > self.edge.max_connections:
            # the connection idle longest, if it had time to send a request (a burst of new
            # connections must not evict one that just arrived)
            victim, since = next(iter(self.edge.idle.items()))
            evict = victim is not self and now - since >= EVICT_AFTER_SECONDS
            self.edge.note(self.loop, evicted=evict)
            if evict:
                victim._abort(None)
            else:
                self._abort(
                    error_bytes(
                        503,
                        "The server is at its connection limit; retry shortly.",
                        "server_busy",
                        (b"retry-after: 1\r\n",),
                    )
                )

    # deadlines

    def _arm(self, seconds: float, expiry: Callable[[], None]) -> None:
        self.expiry = expiry
        self.expires_at = at = self.loop.time() + seconds
        if self.timer is None or at < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = at
            self.timer = self.loop.call_at(at, self._tick)

    def _disarm(self) -> None:
        self.expiry = None  # a pending timer finds nothing to do

    def _stop_timer(self) -> None:
        self.expiry = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _tick(self) -> None:
        self.timer = None
        if self.expiry is None:
            return
        if self.loop.time() < self.expires_at:  # the deadline moved later
            self.timer_at = self.expires_at
            self.timer = self.loop.call_at(self.expires_at, self._tick)
            return
        expiry, self.expiry = self.expiry, None
        expiry()

    def _await_headers(self) -> None:
        self.awaiting_headers = True
        self.request_started = False
        self.header_bytes = 0
        self.header_count = 0
        self.too_many_headers = False

    def _header_timeout(self) -> None:
        if self.request_started:
            message = f"The request headers did not arrive within {self.limits.header_timeout:g} s."
            self._abort(error_bytes(408, message, "request_timeout"))
        else:
            self._abort(None)

    def _body_timeout(self) -> None:
        cycle = self.cycle
        if cycle is None or cycle.response_complete or cycle.response_started:
            self._abort(None)
            return
        cycle.disconnected = True  # the app's receive() ends; anything it sends is dropped
        cycle.message_event.set()
        message = f"The request body did not arrive within {self.limits.body_timeout:g} s."
        self._abort(error_bytes(408, message, "request_timeout"))

    def _abort(self, response: bytes | None) -> None:
        self._disarm()
        self.awaiting_headers = False
        self.edge.idle.pop(self, None)
        if not self.transport.is_closing():
            if response is not None:
                self.transport.write(response)
            self.transport.close()

    # uvicorn / httptools hooks

    def data_received(self, data: bytes) -> None:
        if self.awaiting_headers and not self.transport.is_closing():
            allowance = self.limits.max_header_bytes - self.header_bytes
            if len(data) > allowance:
                # feed only what the limit allows; the rest only if the headers ended in it
                super().data_received(data[:allowance])
                if self.awaiting_headers and not self.upgraded:
                    self._too_large(f"exceed {self.limits.max_header_bytes} bytes")
                    return
                data = data[allowance:]
                if self.upgraded or self.transport.is_closing():
                    return
            else:
                self.header_bytes += len(data)
        super().data_received(data)

    def _too_large(self, what: str) -> None:
        message = f"The request line and headers {what}."
        self._abort(error_bytes(431, message, "request_header_fields_too_large"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {ON_DISCONNECT: []}  # type: ignore[typeddict-unknown-key]
        self.request_started = True
        if self.expiry is None:  # a later request on a kept-alive connection
            self._arm(self.limits.header_timeout, self._header_timeout)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.max_headers:
            self.too_many_headers = True
            raise HeaderLimit()  # httptools stops parsing; uvicorn calls send_400_response
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        self.edge.idle.pop(self, None)
        self._arm(self.limits.body_timeout, self._body_timeout)
        super().on_headers_complete()
        cycle = self.cycle  # the request's new cycle (unless the connection was upgraded)
        if cycle is not None and not isinstance(cycle.message_event, LeanEvent):
            cycle.message_event = LeanEvent(cycle.message_event.is_set())  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # the response may take long: hold no timer meanwhile; the next request arms its own
        self._stop_timer()
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.awaiting_headers and not self.transport.is_closing():
            self.edge.idle[self] = self.loop.time()  # kept alive: evictable, the newest

    def handle_websocket_upgrade(self) -> None:
        self.upgraded = True
        self._stop_timer()  # the WebSocket protocol takes over the transport
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self.too_many_headers:
            self._too_large(f"exceed {self.limits.max_headers} header fields")
        else:
            super().send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.awaiting_headers = False
        self.edge.idle.pop(self, None)
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected:
            for callback in list(cycle.scope.get("extensions", {}).get(ON_DISCONNECT, ())):
                try:
                    callback()
                except Exception:
                    log.exception("a disconnect callback failed")


class HeaderLimit(Exception):
    """Raised from a parser callback when a request has too many header fields."""


def server_config(
    app: Any, *, host: str, port: int, limits: EdgeLimits, **options: Any
) -> uvicorn.Config:
    """The uvicorn configuration respgate serves with (`respgate serve` and the tests)."""
    wanted = descriptors_for(limits.max_connections) if limits.max_connections else 0
    descriptors = raise_descriptor_limit(wanted)
    cap = limits.max_connections or derive_max_connections(descriptors)
    if descriptors < wanted:
        log.warning(
            "open-file limit %d is below the %d that max_connections = %d needs (a client and an "
            "upstream socket each); raise it with `ulimit -n %d` or systemd LimitNOFILE=%d",
            descriptors,
            wanted,
            cap,
            wanted,
            wanted,
        )
    log.info("open-file limit %d, max_connections %d", descriptors, cap)
    edge = Edge(limits, cap)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=functools.partial(GuardedProtocol, edge=edge),  # type: ignore[arg-type]
        **options,
    )
