"""Observers of the run lifecycle: operations (metrics, logs, limits, usage) watch
responses here, registered once, instead of calls sprinkled through the engine and
the transports.

Each response has one `RunInfo` that the engine fills in as the run goes; the
registered observers are told at each step:

    accepted            the engine took a parsed request (model and tenant known)
    rejected            it ended before the first byte with an HTTP error (`ApiError`)
    upstream_opened     the provider answered with its headers (retries/fallbacks done)
    upstream_first_byte the provider's first signal arrived
    client_first_byte   the transport wrote the first bytes that carry the provider's
                        output (its first write after `upstream_first_byte`)
    emitted             events were produced (each batch as the run pushes it; only the
                        observers that override it are told: the console's tap)
    finished            the terminal event was produced (status, error code, usage known)
    delivered           finished, and the transport let go of the run (it wrote the end,
                        or the client left); at once for a background run

Every accepted run ends with exactly one of `rejected` or `delivered`: that is where
per-response lines and end-of-response metrics belong (time to first byte is known).
Transports tell the run when they let go of it (`Run.release()`), whatever the reason.

Callbacks are synchronous and must be cheap; an observer with I/O to do (Redis, a
remote exporter) schedules it itself and finishes it in `aclose()`, which the engine
awaits at shutdown before the store closes. An observer that raises is logged and
never breaks the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .protocol.errors import ApiError
from .providers.base import Attempt

log = logging.getLogger("respgate.observe")


@dataclass(slots=True)
class RunInfo:
    """What operations know about one response. Times are `time.perf_counter()` seconds."""

    tenant: str
    model: str
    transport: str  # "sse" | "json" | "websocket" | "background"
    request_id: str | None = None
    endpoint: str = "responses"
    response_id: str | None = None
    # Every upstream attempt in order (retries and fallbacks); empty for built-in models.
    attempts: list[Attempt] = field(default_factory=list)
    provider: str | None = None  # who served it ("builtin" for echo, "prewarm": no one)
    upstream_model: str | None = None
    accepted_at: float = field(default_factory=time.perf_counter)
    upstream_opened_at: float | None = None
    upstream_first_byte_at: float | None = None
    client_first_byte_at: float | None = None
    finished_at: float | None = None
    status: str | None = None  # the Response status at the end
    error_code: str | None = None  # the specific code of the `error` event / HTTP error
    usage: dict[str, Any] | None = None
    # USD from the `[prices]` table (None: no price for the model), set at `finished`.
    cost: float | None = None
    # Set when the rate limits could not be checked (their Redis unreachable): the run
    # went on unlimited (`on_redis_error = "open"`) or was refused with a 503 ("closed").
    limits_error: str | None = None
    released: bool = False  # the transport let go of the run
    delivered: bool = False  # `delivered` was told

    @property
    def retries(self) -> int:
        """Attempts beyond the first at the same provider and model."""
        seen: set[tuple[str, str]] = set()
        retries = 0
        for a in self.attempts:
            key = (a.provider, a.upstream_model)
            retries += key in seen
            seen.add(key)
        return retries

    @property
    def fallbacks(self) -> int:
        """Targets tried after the route's first one."""
        return max(0, len({(a.provider, a.upstream_model) for a in self.attempts}) - 1)


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One operation of a gateway-run tool (`toolloop.py`): a listing (`tool` None) or a call.
    `server` is bounded by the operator (a configured label, else the URL's host);
    `error` the error type (`http_error`, `mcp_protocol_error`, ...), None when it worked."""

    server: str
    tool: str | None
    seconds: float
    error: str | None = None


class Observer:
    """Base class: override the steps you care about (all default to nothing)."""

    def accepted(self, run: RunInfo) -> None:
        pass

    def rejected(self, run: RunInfo, error: ApiError) -> None:
        pass

    def upstream_opened(self, run: RunInfo) -> None:
        pass

    def upstream_first_byte(self, run: RunInfo) -> None:
        pass

    def client_first_byte(self, run: RunInfo) -> None:
        pass

    def emitted(self, run: RunInfo, events: list[dict[str, Any]]) -> None:
        pass

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        pass

    def delivered(self, run: RunInfo) -> None:
        pass

    def tool_used(self, run: RunInfo, use: ToolUse) -> None:
        pass

    async def aclose(self) -> None:
        """Finish pending I/O (the server is shutting down; the store is still open)."""


class Observers:
    """The registered observers; each step is told to every one, in registration order.
    `cost` prices a finished run's usage (`RunInfo.cost`) before the observers hear of it."""

    def __init__(
        self,
        observers: Iterable[Observer] = (),
        *,
        cost: Callable[[RunInfo], float | None] | None = None,
    ) -> None:
        self.observers: list[Observer] = []
        self._emitters: list[Observer] = []  # those that override `emitted` (per batch: hot)
        self.cost = cost
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)
        if type(observer).emitted is not Observer.emitted:
            self._emitters.append(observer)

    def _tell(self, step: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, step)(*args)
            except Exception:
                log.exception("observer %s failed at %s", type(observer).__name__, step)

    def accepted(self, run: RunInfo) -> None:
        self._tell("accepted", run)

    def rejected(self, run: RunInfo, error: ApiError) -> None:
        run.finished_at = time.perf_counter()
        run.error_code = error.code
        self._tell("rejected", run, error)

    def upstream_opened(self, run: RunInfo) -> None:
        run.upstream_opened_at = time.perf_counter()
        self._tell("upstream_opened", run)

    def upstream_first_byte(self, run: RunInfo) -> None:
        run.upstream_first_byte_at = time.perf_counter()
        self._tell("upstream_first_byte", run)

    def client_first_byte(self, run: RunInfo) -> None:
        """Told by the transport before each write; only the first write after the
        provider's first signal counts (earlier writes carry only the opening events)."""
        if run.client_first_byte_at is None and run.upstream_first_byte_at is not None:
            run.client_first_byte_at = time.perf_counter()
            self._tell("client_first_byte", run)

    def emitted(self, run: RunInfo, events: list[dict[str, Any]]) -> None:
        for observer in self._emitters:
            try:
                observer.emitted(run, events)
            except Exception:
                log.exception("observer %s failed at emitted", type(observer).__name__)

    def tool_used(self, run: RunInfo, use: ToolUse) -> None:
        """A gateway-run tool was listed or called during the run."""
        self._tell("tool_used", run, use)

    def released(self, run: RunInfo) -> None:
        """The transport let go of the run (it wrote the end, or the client left)."""
        run.released = True
        self._deliver(run)

    def _deliver(self, run: RunInfo) -> None:
        ended = run.finished_at is not None
        if ended and not run.delivered and (run.released or run.transport == "background"):
            run.delivered = True
            self._tell("delivered", run)

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        run.finished_at = time.perf_counter()
        run.status = response.get("status")
        run.usage = response.get("usage")
        if self.cost is not None:
            try:
                run.cost = self.cost(run)
            except Exception:
                log.exception("pricing response %s failed", run.response_id)
        self._tell("finished", run, response)
        self._deliver(run)

    async def aclose(self) -> None:
        for observer in self.observers:
            try:
                await observer.aclose()
            except Exception:
                log.exception("observer %s failed to close", type(observer).__name__)
