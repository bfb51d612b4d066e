"""One response from request to terminal event.

`Engine.create()` routes the request, loads the conversation context, opens
the provider (upstream failures before this point are plain HTTP errors), and
returns a `Run`: a producer task that feeds the provider's signals to the
`ResponseBuilder` and buffers the events for a transport to drain. The record
is persisted before the terminal event is released. Every run ends with
exactly one terminal event, whatever happens: upstream truncation, an
exception, a client disconnect, or server shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .protocol.builder import ResponseBuilder
from .protocol.errors import ApiError, not_found
from .protocol.ids import new_id
from .protocol.request import CreateRequest
from .protocol.response import new_response
from .protocol.signals import Failure, Signal
from .providers.base import ModelCall
from .providers.registry import ProviderRegistry
from .store.base import ResponseStore, StoredResponse

log = logging.getLogger("respgate.engine")

Event = dict[str, Any]


class Run:
    """A response in flight. Transports call `next_batch()` until it returns `[]`."""

    def __init__(
        self,
        builder: ResponseBuilder,
        signals: AsyncIterator[Signal],
        on_terminal: Callable[[Run], Awaitable[None]] | None = None,
    ) -> None:
        self.builder = builder
        self._signals = signals
        self._on_terminal = on_terminal
        self._buffer: list[Event] = []
        self._wakeup = asyncio.Event()
        self._finished = False
        self._abort: tuple[str, str] | None = None
        self.task: asyncio.Task[None] | None = None
        # Request and translation warnings (tools dropped, ...) for a response header.
        self.warnings: list[str] = list(getattr(signals, "warnings", ()))

    @property
    def response_id(self) -> str:
        return self.builder.response["id"]

    @property
    def response(self) -> dict[str, Any]:
        return self.builder.response

    def push(self, events: list[Event]) -> None:
        if events:
            self._buffer.extend(events)
            self._wakeup.set()

    def start(self) -> None:
        self.task = asyncio.create_task(self._produce(), name=f"run {self.response_id}")

    async def next_batch(self, timeout: float | None = None) -> list[Event] | None:
        """Every event emitted since the last call, at once (never waits to fill a batch).

        Returns `[]` once the run has finished and everything was drained, and
        None when `timeout` seconds passed with nothing new (time for a keep-alive).
        """
        if not self._buffer and not self._finished:
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                return None
        batch, self._buffer = self._buffer, []
        return batch

    def abort(self, code: str, message: str) -> None:
        """End the run now with `error` + `response.failed` (disconnect, shutdown, cancel)."""
        if self.task is not None and not self.task.done() and self._abort is None:
            self._abort = (code, message)
            self.task.cancel()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.shield(self.task)

    async def _produce(self) -> None:
        builder = self.builder
        terminal: list[Event] = []
        try:
            try:
                async for signal in self._signals:
                    events = builder.feed(signal)
                    if builder.done:
                        terminal = events
                        break
                    self.push(events)
                else:
                    terminal = builder.feed(
                        Failure(
                            "upstream_truncated",
                            "The upstream stream ended before the response finished.",
                        )
                    )
            finally:
                await _close_quietly(self._signals)
        except asyncio.CancelledError:
            if self._abort is None:
                raise
            terminal = builder.feed(Failure(*self._abort))
        except Exception as exc:
            log.exception("response %s failed while streaming", self.response_id)
            if not builder.done:
                terminal = builder.feed(
                    Failure(
                        "server_error",
                        f"The gateway failed while streaming ({type(exc).__name__}).",
                    )
                )
        if self._on_terminal is not None:
            try:
                await asyncio.shield(self._on_terminal(self))
            except Exception:
                log.exception("response %s could not be stored", self.response_id)
        self.push(terminal)
        self._finished = True
        self._wakeup.set()


async def _close_quietly(signals: AsyncIterator[Signal]) -> None:
    aclose = getattr(signals, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.exception("closing a provider stream failed")


class Engine:
    def __init__(
        self,
        registry: ProviderRegistry,
        store: ResponseStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.runs: set[Run] = set()
        self.accepting = True

    def _now(self) -> int:
        return int(self.clock())

    async def create(self, req: CreateRequest, *, tenant: str = "") -> Run:
        """Start a response; raises `ApiError` for anything that fails before the first byte."""
        if not self.accepting:
            raise ApiError(503, "The server is shutting down.", code="server_shutting_down")
        assert req.model is not None
        self.registry.check(req.model)
        items = await self._context(req, tenant)
        call = ModelCall(req, items, model=req.model, instructions=req.instructions)
        signals = await self.registry.open(req.model, call)
        response = new_response(req, new_id("response"), self._now())
        builder = ResponseBuilder(response, clock=self._now)
        wants_store = req.store is not False and self.store is not None
        run = Run(builder, signals, self._persist_for(req, tenant) if wants_store else None)
        run.warnings[:0] = req.warnings
        run.push(builder.open())
        self.runs.add(run)
        run.start()
        assert run.task is not None
        run.task.add_done_callback(lambda _: self.runs.discard(run))
        return run

    async def _context(self, req: CreateRequest, tenant: str) -> list[dict[str, Any]]:
        if req.previous_response_id is None:
            return list(req.items)
        chain = None
        if self.store is not None:
            chain = await self.store.load_chain(req.previous_response_id, tenant)
        if chain is None:
            raise not_found(
                f"Previous response with id '{req.previous_response_id}' not found.",
                "previous_response_not_found",
                "previous_response_id",
            )
        return [*chain, *req.items]

    def _persist_for(self, req: CreateRequest, tenant: str) -> Callable[[Run], Awaitable[None]]:
        async def persist(run: Run) -> None:
            assert self.store is not None
            await self.store.save(StoredResponse(run.response, list(req.items), tenant))

        return persist

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; let runs finish for `grace` seconds, then end the rest as failed."""
        self.accepting = False
        pending = [r.task for r in self.runs if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for run in list(self.runs):
            run.abort("server_shutdown", "The server is shutting down; the response was cut short.")
        pending = [r.task for r in self.runs if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)
        await self.registry.aclose()
