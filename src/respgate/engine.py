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
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .protocol.builder import ResponseBuilder
from .protocol.errors import ApiError, invalid, not_found, previous_response_not_found, quote
from .protocol.ids import new_id
from .protocol.request import CreateRequest
from .protocol.response import new_response
from .protocol.signals import Failure, Signal
from .providers.base import ModelCall
from .providers.registry import ProviderRegistry
from .store.base import ACTIVE_STATUSES, ResponseStore, StoredResponse

log = logging.getLogger("respgate.engine")

Event = dict[str, Any]


class EventSource:
    """Events buffered for a transport: `push` in, `next_batch()` out until it returns `[]`."""

    def __init__(self) -> None:
        self._buffer: list[Event] = []
        self._wakeup = asyncio.Event()
        self._finished = False
        self.task: asyncio.Task[None] | None = None
        # Request and translation warnings (tools dropped, ...) for a response header.
        self.warnings: list[str] = []

    def push(self, events: list[Event]) -> None:
        if events:
            self._buffer.extend(events)
            self._wakeup.set()

    @property
    def drained(self) -> bool:
        """True once the source has finished and every event was taken."""
        return self._finished and not self._buffer

    def finish(self) -> None:
        self._finished = True
        self._wakeup.set()

    async def next_batch(self, timeout: float | None = None) -> list[Event] | None:
        """Every event emitted since the last call, at once (never waits to fill a batch).

        Returns `[]` once the source has finished and everything was drained, and
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
        if self.task is not None and not self.task.done():
            self.task.cancel()


class Replay(EventSource):
    """A background response's logged events, then its live ones (`GET ?stream=true`).
    Aborting it (client gone) stops only this reader, never the response."""

    def __init__(self, events: AsyncIterator[Event]) -> None:
        super().__init__()
        self.task = asyncio.create_task(self._pump(events))

    async def _pump(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                self.push([event])
        except Exception:
            log.exception("reading an event log failed")
        finally:
            self.finish()


class Run(EventSource):
    """A response in flight. Transports call `next_batch()` until it returns `[]`."""

    def __init__(
        self,
        builder: ResponseBuilder,
        signals: AsyncIterator[Signal],
        on_terminal: Callable[[Run], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.builder = builder
        self._signals = signals
        self._on_terminal = on_terminal
        self._abort: tuple[str, str] | None = None
        self.warnings = list(getattr(signals, "warnings", ()))
        # The model context this response was generated from (previous chain + input).
        self.context: list[dict[str, Any]] = []

    @property
    def response_id(self) -> str:
        return self.builder.response["id"]

    @property
    def response(self) -> dict[str, Any]:
        return self.builder.response

    def start(self) -> None:
        self.task = asyncio.create_task(self._produce(), name=f"run {self.response_id}")

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
        self.finish()


async def _close_quietly(signals: AsyncIterator[Signal]) -> None:
    aclose = getattr(signals, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.exception("closing a provider stream failed")


class Engine:
    """Runs responses and answers for stored ones.

    `store` is a `ResponseStore`, or an async callable that opens one in the
    server's event loop (`start()` calls it). Without a store nothing is kept:
    `store: true` is a no-op and `previous_response_id` is always not found.
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        store: ResponseStore | Callable[[], Awaitable[ResponseStore]] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        expire_every: float = 3600.0,
    ) -> None:
        self.registry = registry
        self._open_store = store if callable(store) and not hasattr(store, "save") else None
        self.store: ResponseStore | None = None if self._open_store else store  # type: ignore[assignment]
        self.clock = clock
        self.expire_every = expire_every
        self.runs: set[Run] = set()
        self.background: dict[str, Run] = {}
        self.accepting = True
        self._tasks: set[asyncio.Task[None]] = set()  # background event-log writers
        self._expirer: asyncio.Task[None] | None = None

    def _now(self) -> int:
        return int(self.clock())

    async def start(self) -> None:
        """Open the store, fail what a dead process left in flight, and expire old records."""
        if self._open_store is not None:
            self.store = await self._open_store()
        if self.store is not None:
            failed = await self.store.recover()
            if failed:
                log.warning("marked %d responses of a stopped process failed", len(failed))
            self._expirer = asyncio.create_task(self._expire_loop())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire_loop(self) -> None:
        assert self.store is not None
        while True:
            try:
                await self.store.expire()
            except Exception:
                log.exception("expiring stored responses failed")
            await asyncio.sleep(self.expire_every)

    async def create(
        self,
        req: CreateRequest,
        *,
        tenant: str = "",
        context: list[dict[str, Any]] | None = None,
    ) -> Run:
        """Start a response; raises `ApiError` for anything that fails before the first byte.
        `context`: the model context already resolved by `context()` (WebSocket mode)."""
        if not self.accepting:
            raise ApiError(503, "The server is shutting down.", code="server_shutting_down")
        assert req.model is not None
        self.registry.check(req.model, req)
        items = context if context is not None else await self.context(req, tenant)
        call = ModelCall(req, items, model=req.model, instructions=req.instructions)
        signals = await self.registry.open(req.model, call)
        response = new_response(req, new_id("response"), self._now())
        builder = ResponseBuilder(response, clock=self._now)
        opening = builder.open()
        persist = None
        if req.store is not False and self.store is not None:
            # Recorded as in_progress at once (not awaited: no latency before the first
            # byte), so a response cut short by a crash is found and failed at restart.
            record = StoredResponse(builder.snapshot(), list(req.items), tenant)
            persist = self._persist_for(req, tenant, asyncio.create_task(self.store.save(record)))
        run = Run(builder, signals, persist)
        run.context = items
        run.warnings[:0] = req.warnings
        run.push(opening)
        self._track(run)
        return run

    def _track(self, run: Run) -> None:
        self.runs.add(run)
        run.start()
        assert run.task is not None
        run.task.add_done_callback(lambda _: self.runs.discard(run))

    async def create_background(self, req: CreateRequest, *, tenant: str = "") -> dict[str, Any]:
        """Queue a background response and return it (status `queued`); generation runs in
        a task whose every event is appended to the response's log."""
        if not self.accepting:
            raise ApiError(503, "The server is shutting down.", code="server_shutting_down")
        if self.store is None:
            raise invalid("Background responses need a configured store.", "background")
        assert req.model is not None
        self.registry.check(req.model, req)
        items = await self.context(req, tenant)
        call = ModelCall(req, items, model=req.model, instructions=req.instructions)
        response = new_response(req, new_id("response"), self._now())
        builder = ResponseBuilder(response, clock=self._now)
        queued = builder.open(queued=True)
        await self.store.save(StoredResponse(builder.response, list(req.items), tenant))
        await self.store.append_events(response["id"], queued)
        snapshot = builder.snapshot()
        run = Run(builder, self._open_signals(req.model, call))
        run.push(builder.run())
        self.background[run.response_id] = run
        self._track(run)
        self._spawn(self._log(run))
        return snapshot

    async def _open_signals(self, model: str, call: ModelCall) -> AsyncIterator[Signal]:
        """The provider's signals, with an error while opening it as a `Failure`."""
        try:
            signals = await self.registry.open(model, call)
        except ApiError as err:
            yield Failure(err.code or "upstream_error", err.message)
            return
        try:
            async for signal in signals:
                yield signal
        finally:
            await _close_quietly(signals)

    async def _log(self, run: Run) -> None:
        """Append a background run's events to its log as they come (each write takes
        everything emitted meanwhile). Stops the run if the response was cancelled."""
        assert self.store is not None
        try:
            while batch := await run.next_batch():
                if not await self.store.append_events(run.response_id, batch):
                    run.abort("cancelled", "The response was cancelled.")
        except Exception:
            log.exception("response %s: the event log could not be written", run.response_id)
            run.abort("server_error", "The response's event log could not be written.")
        finally:
            self.background.pop(run.response_id, None)

    async def context(
        self, req: CreateRequest, tenant: str = "", *, chain: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The model context: the previous chain, then this request's input with every
        `item_reference` replaced by the item it names (`req.items` is updated too).
        `chain`: the previous response's items already in hand (a WebSocket connection's
        cache); otherwise the chain is loaded from the store."""
        req.items = [await self._resolve(item, i, tenant) for i, item in enumerate(req.items)]
        if req.previous_response_id is None:
            return list(req.items)
        if chain is not None:
            return [*chain, *req.items]
        previous_id = req.previous_response_id
        missing = previous_response_not_found(previous_id)
        previous = None if self.store is None else await self.store.get(previous_id, tenant)
        if previous is None or self.store is None:
            raise missing
        if previous["status"] in ACTIVE_STATUSES:
            raise invalid(
                f"Previous response with id {quote(previous_id)} is still {previous['status']}; "
                "continue it once it has finished.",
                "previous_response_id",
                code="previous_response_in_progress",
            )
        chain = await self.store.load_chain(previous_id, tenant)
        if chain is None:
            raise missing
        return [*chain, *req.items]

    async def _resolve(self, item: dict[str, Any], index: int, tenant: str) -> dict[str, Any]:
        if item["type"] != "item_reference":
            return item
        found = None if self.store is None else await self.store.get_item(item["id"], tenant)
        if found is None:
            raise not_found(
                f"Item with id {quote(item['id'])} not found.",
                "item_not_found",
                f"input[{index}].id",
            )
        return found

    def _persist_for(
        self, req: CreateRequest, tenant: str, started: asyncio.Task[bool]
    ) -> Callable[[Run], Awaitable[None]]:
        """The final save, after the in_progress record `started` (whatever became of it)."""

        async def persist(run: Run) -> None:
            assert self.store is not None
            with contextlib.suppress(Exception):
                await started
            await self.store.save(StoredResponse(run.response, list(req.items), tenant))

        return persist

    # ------------------------------------------------------------ stored responses

    def _stored(self) -> ResponseStore:
        if self.store is None:
            raise not_found("No responses are stored by this gateway.", "response_not_found")
        return self.store

    @staticmethod
    def _missing(response_id: str) -> ApiError:
        return not_found(f"Response with id {quote(response_id)} not found.", "response_not_found")

    async def retrieve(self, response_id: str, *, tenant: str = "") -> dict[str, Any]:
        response = await self._stored().get(response_id, tenant)
        if response is None:
            raise self._missing(response_id)
        return response

    async def replay(
        self, response_id: str, *, tenant: str = "", starting_after: int | None = None
    ) -> Replay:
        """A background response's events after `starting_after`, then live until the end."""
        response = await self.retrieve(response_id, tenant=tenant)
        if not response.get("background"):
            raise invalid("Only background responses can be streamed again.", "stream")
        return Replay(self._stored().follow(response_id, tenant, starting_after))

    async def delete(self, response_id: str, *, tenant: str = "") -> dict[str, Any]:
        if not await self._stored().delete(response_id, tenant):
            raise self._missing(response_id)
        run = self.background.get(response_id)
        if run is not None:
            run.abort("cancelled", "The response was deleted.")
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def input_items(
        self,
        response_id: str,
        *,
        tenant: str = "",
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
    ) -> dict[str, Any]:
        page = await self._stored().input_items(
            response_id, tenant, limit=limit, order=order, after=after
        )  # type: ignore[arg-type]
        if page is None:
            raise self._missing(response_id)
        return page.wire()

    async def cancel(self, response_id: str, *, tenant: str = "") -> dict[str, Any]:
        """Cancel a background response (on whichever process runs it: that process's next
        log write is refused and it stops); here, its run stops at once."""
        response = await self._stored().cancel(response_id, tenant)
        if response is None:
            raise self._missing(response_id)
        run = self.background.get(response_id)
        if run is not None:
            run.abort("cancelled", "The response was cancelled.")
        return response

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
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._expirer is not None:
            self._expirer.cancel()
        await self.registry.aclose()
        if self.store is not None and self._open_store is not None:
            await self.store.close()  # opened here, closed here
