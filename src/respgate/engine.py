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
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from . import carry, toolloop
from .config import McpConfig
from .conversations import Conversations
from .deadlines import Deadlines, Entry
from .limits import Grant, Limits
from .observe import Observer, Observers, RunInfo
from .protocol.builder import ResponseBuilder
from .protocol.errors import ApiError, invalid, not_found, previous_response_not_found, quote
from .protocol.ids import new_id
from .protocol.items import canonical, shown
from .protocol.lifecycle import ReasoningEvents
from .protocol.request import CompactRequest, CreateRequest
from .protocol.response import new_response, usage_object
from .protocol.signals import Compaction, Failure, Finish, Signal, Usage
from .protocol.surface import SurfaceBuilder, SurfaceFactory
from .providers.base import ModelCall, close_quietly
from .providers.registry import ProviderRegistry
from .seal import Sealer, decode_key, new_key
from .store.base import ACTIVE_STATUSES, ResponseQuery, ResponseStore, StoredResponse
from .store.keys import ApiKey
from .usage import Prices, UsageLog

log = logging.getLogger("respgate.engine")

Event = dict[str, Any]

SHUTDOWN = ("server_shutdown", "The server is shutting down; the response was cut short.")


class EventSource:
    """Events buffered for a transport: `push` in, `next_batch()` out until it returns `[]`."""

    def __init__(self) -> None:
        self._buffer: list[Event] = []
        # the reader waiting, if any: True when events came (or the end), False for quiet
        self._waiter: asyncio.Future[bool] | None = None
        self._tick: Entry | None = None  # the keep-alive deadline (one shared loop timer)
        self._taken_at = 0.0  # loop time of the last batch (or keep-alive) taken
        self._finished = False
        self.task: asyncio.Task[None] | None = None
        # Request and translation warnings (tools dropped, ...) for a response header.
        self.warnings: list[str] = []

    def push(self, events: list[Event]) -> None:
        if events:
            self._buffer.extend(events)
            self._wake()

    def _wake(self, data: bool = True) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(data)

    @property
    def drained(self) -> bool:
        """True once the source has finished and every event was taken."""
        return self._finished and not self._buffer

    def finish(self) -> None:
        self._finished = True
        if self._tick is not None:
            Deadlines.for_loop(asyncio.get_running_loop()).cancel(self._tick)
            self._tick = None
        self._wake()

    async def next_batch(self, timeout: float | None = None) -> list[Event] | None:
        """Every event emitted since the last call, at once (never waits to fill a batch).

        Returns `[]` once the source has finished and everything was drained, and
        None when `timeout` seconds passed since the last batch with nothing new (time
        for a keep-alive). One reader at a time; a future per wait, and one keep-alive
        deadline re-armed only when it fires, on the loop's shared `Deadlines` (not an
        `asyncio.Event` and a timeout per wait, nor a loop timer per stream: an open stream
        holds less and a token costs less).
        """
        loop = asyncio.get_running_loop()
        if not self._buffer and not self._finished:
            if timeout is not None and self._tick is None:
                self._taken_at = self._taken_at or loop.time()
                deadlines = Deadlines.for_loop(loop)
                self._tick = deadlines.call_at(self._taken_at + timeout, self._quiet, timeout)
            self._waiter = loop.create_future()
            try:
                if not await self._waiter:
                    self._taken_at = loop.time()
                    return None
            finally:
                self._waiter = None
        self._taken_at = loop.time()
        batch, self._buffer = self._buffer, []
        return batch

    def _quiet(self, timeout: float) -> None:
        """The keep-alive timer: wake the waiting reader with nothing if `timeout` passed
        since the last batch, and re-arm for the next one."""
        loop = asyncio.get_running_loop()
        due = self._taken_at + timeout
        if loop.time() >= due:
            self._wake(False)
            due = loop.time() + timeout
        self._tick = (
            None if self._finished else Deadlines.for_loop(loop).call_at(due, self._quiet, timeout)
        )

    def abort(self, code: str, message: str) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def client_first_byte(self) -> None:
        """Told by the transport before each write."""

    def release(self) -> None:
        """Told by the transport when it lets go of the source (end written, client gone)."""


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


class StartRecord:
    """A response's in_progress record, so that a restart finds and fails a response
    cut short by a crash. Written once the transport has made its first write
    (`begin`, from `Run.client_first_byte`), not before: its work stays off the time to
    first byte. A response that has ended by then (non-streaming, or whole in one
    upstream read) is stored once, by its final save (`Run._save` settles the record
    first; the save awaits a write that had begun)."""

    def __init__(self, store: ResponseStore, record: StoredResponse) -> None:
        self._store = store
        self._record: StoredResponse | None = record
        self._task: asyncio.Task[bool] | None = None

    def begin(self) -> None:
        if self._record is not None:
            record, self._record = self._record, None
            # superseded by the final save, which is durable: not flushed to disk itself
            self._task = asyncio.create_task(self._store.save(record, durable=False))

    def settle(self) -> None:
        """The response has ended: no record unless its write has begun."""
        self._record = None

    async def written(self) -> None:
        """Before the final save: the record's write, if it began, has finished."""
        self._record = None
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def _batches(signals: AsyncIterator[Signal]) -> AsyncIterator[list[Signal]]:
    """A provider's signals a read at a time (`SignalStream.batches`), or one by one
    from a source that has no reads (the built-in models, the tool loop)."""
    batches = getattr(signals, "batches", None)
    return batches() if batches is not None else _each_alone(signals)


async def _each_alone(signals: AsyncIterator[Signal]) -> AsyncIterator[list[Signal]]:
    async for signal in signals:
        yield [signal]


class Run(EventSource):
    """A response in flight. Transports call `next_batch()` until it returns `[]`."""

    def __init__(
        self,
        builder: ResponseBuilder,
        signals: AsyncIterator[Signal],
        on_terminal: Callable[[Run], Awaitable[None]] | None = None,
        *,
        info: RunInfo | None = None,
        observers: Observers | None = None,
        surface: SurfaceBuilder | None = None,
        start: StartRecord | None = None,
    ) -> None:
        super().__init__()
        self.builder = builder
        self._start = start  # its in_progress record, written after the first write
        # Another inbound surface's builder: its events are what the transport sends.
        self.surface = surface
        self._signals = signals
        self._on_terminal = on_terminal
        self.info = info or RunInfo("", builder.response.get("model", ""), "sse")
        self.info.response_id = builder.response["id"]
        self._observers = observers or Observers()
        self._abort: tuple[str, str] | None = None
        self.warnings = list(getattr(signals, "warnings", ()))
        # Response headers for the transport (the key's rate-limit state).
        self.headers: dict[str, str] = {}
        # The model context this response was generated from (previous chain + input).
        self.context: list[dict[str, Any]] = []

    @property
    def response_id(self) -> str:
        return self.builder.response["id"]

    def push(self, events: list[Event]) -> None:
        if events:
            self._observers.emitted(self.info, events)  # the console's tap, when enabled
        super().push(events)

    @property
    def response(self) -> dict[str, Any]:
        return self.builder.response

    def start(self) -> None:
        self.task = asyncio.create_task(self._produce(), name=f"run {self.response_id}")

    def abort(self, code: str, message: str) -> None:
        """End the run now with `error` + `response.failed` (disconnect, shutdown, cancel).
        A run whose terminal event is already built is left to finish (its final save)."""
        if (
            self.task is not None
            and not self.task.done()
            and self._abort is None
            and not self.builder.done
        ):
            self._abort = (code, message)
            self.task.cancel()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.shield(self.task)

    def client_first_byte(self) -> None:
        if self._start is not None:
            self._start.begin()
        self._observers.client_first_byte(self.info)

    def release(self) -> None:
        self._observers.released(self.info)

    async def _produce(self) -> None:
        builder = self.builder
        terminal: list[Event] = []
        first = True
        interrupted = False  # cancelled by someone else than `abort`: re-raised at the end
        batches = _batches(self._signals)
        try:
            try:
                async for batch in batches:
                    if first:
                        first = False
                        self._observers.upstream_first_byte(self.info)
                    events: list[Event] = []
                    for signal in batch:
                        produced = self._feed(signal)
                        if builder.done:
                            terminal = produced
                            break
                        events += produced
                    self.push(events)
                    if builder.done:
                        break
                else:
                    terminal = self._feed(
                        Failure(
                            "upstream_truncated",
                            "The upstream stream ended before the response finished.",
                        )
                    )
            finally:
                await close_quietly(batches)  # (a wrapper's generator too: not left to the GC)
                await close_quietly(self._signals)
        except asyncio.CancelledError:
            if self._abort is None:
                interrupted = True
                self._abort = SHUTDOWN
            elif (task := asyncio.current_task()) is not None:
                task.uncancel()  # ours, handled here
            if not builder.done:
                terminal = self._feed(Failure(*self._abort))
        except Exception as exc:
            log.exception("response %s failed while streaming", self.response_id)
            if not builder.done:
                terminal = self._feed(
                    Failure(
                        "server_error",
                        f"The gateway failed while streaming ({type(exc).__name__}).",
                    )
                )
        try:
            interrupted |= await self._save()
        finally:
            self.push(terminal)  # exactly one terminal event, then the end, whatever happened
            self.finish()
            self._observers.finished(self.info, builder.response)
        if interrupted:
            raise asyncio.CancelledError

    def _feed(self, signal: Signal) -> list[Event]:
        """One signal into the response's builder (the record) and, for another inbound
        surface, into its builder too; returns the events the transport sends."""
        events = self.builder.feed(signal)
        if self.builder.done:
            for event in events:
                if event["type"] == "error":
                    self.info.error_code = event.get("code")
        return events if self.surface is None else self.surface.feed(signal)

    async def _save(self) -> bool:
        """Run `on_terminal` (the final save) to its end, even if this task is cancelled
        meanwhile: nothing stored is lost. True if it was cancelled."""
        if self._start is not None:
            self._start.settle()  # (the write of the first events may come before the save)
        if self._on_terminal is None:
            return False
        saving = asyncio.ensure_future(self._on_terminal(self))
        cancelled = False
        while True:
            try:
                await asyncio.shield(saving)
                return cancelled
            except asyncio.CancelledError:
                cancelled = True
                if saving.done():  # the save itself was cancelled (event loop teardown)
                    log.error("response %s: the final save was cancelled", self.response_id)
                    return cancelled
            except Exception:
                log.exception("response %s could not be stored", self.response_id)
                return cancelled


@dataclass(slots=True)
class Queued:
    """A background response as queued, and the response headers for its request."""

    response: dict[str, Any]
    headers: dict[str, str]


def _then_finish(
    persist: Callable[[Run], Awaitable[None]] | None, grant: Grant
) -> Callable[[Run], Awaitable[None]] | None:
    """The run's last step before its terminal event: the final save, then the key's
    stream slot given back and its tokens counted (so the next request sees both)."""
    if grant.finished:
        return persist

    async def terminal(run: Run) -> None:
        try:
            if persist is not None:
                await persist(run)
        finally:
            await grant.finish(run.response.get("usage"))

    return terminal


async def prewarm() -> AsyncIterator[Signal]:
    """The signals of a `generate: false` request (Codex's prewarm): no model is called and
    the response completes with no output, so it records its context for the next turn
    (`previous_response_id`) and holds nothing a client could take as an answer."""
    yield Usage(0, 0)
    yield Finish()


def _as_api_error(exc: Exception) -> ApiError:
    """What the client is answered for `exc` (an unexpected exception is a 500)."""
    if isinstance(exc, ApiError):
        return exc
    return ApiError(500, f"The gateway hit an internal error ({type(exc).__name__}).",
                    code="server_error")  # fmt: skip


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
        observers: Iterable[Observer] = (),
        limits: Limits | None = None,
        prices: Prices | None = None,
        seal_key: bytes | None = None,
        reasoning_events: ReasoningEvents = "openai",
        mcp: McpConfig | None = None,
    ) -> None:
        self.registry = registry
        self.mcp = mcp or McpConfig()  # the MCP servers requests may name (`toolloop.py`)
        self.reasoning_events = reasoning_events  # unless a request names its own
        # Seals compaction items and reasoning carriers (`carry.py`). Without `seal_key`,
        # `start()` takes the store's key (made by the first process); without a store the
        # key is this process's own.
        self.sealer = Sealer(seal_key or os.urandom(32))
        self._seal_key_pending = seal_key is None  # the store's key is still to be read
        self.limits = limits
        # Every finished response's usage and cost, written to the store off the hot path.
        self.usage = UsageLog(lambda: self.store)
        self.observers = Observers(
            [*observers, self.usage], cost=None if prices is None else prices.cost
        )
        self._open_store = store if callable(store) and not hasattr(store, "save") else None
        self.store: ResponseStore | None = None if self._open_store else store  # type: ignore[assignment]
        self.clock = clock
        self.expire_every = expire_every
        self.runs: set[Run] = set()
        self.background: dict[str, Run] = {}
        self.accepting = True
        self.draining = False  # set on SIGTERM: /readyz says 503 so balancers stop sending
        self._tasks: set[asyncio.Task[None]] = set()  # background event-log writers
        self._expirer: asyncio.Task[None] | None = None
        self.conversations = Conversations(lambda: self.store, clock)

    def _now(self) -> int:
        return int(self.clock())

    async def start(self) -> None:
        """Open the store, fail what a dead process left in flight, and expire old records."""
        if self._open_store is not None:
            self.store = await self._open_store()
        try:
            await self._load_seal_key()
        except ApiError:
            log.warning("the seal key could not be read from the store yet")
        if self.store is not None:
            failed = await self.store.recover()
            if failed:
                log.warning("marked %d responses of a stopped process failed", len(failed))
            self._expirer = asyncio.create_task(self._expire_loop())

    async def ready(self, timeout: float = 2.0) -> str | None:
        """None when this process should get traffic, else why not: draining, or the
        store not answering a read within `timeout` seconds."""
        if self.draining or not self.accepting:
            return "draining"
        if self._open_store is not None and self.store is None:
            return "store not open"
        if self.store is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self.store.get("resp_readyz", "")
            except Exception as exc:
                return f"store unreachable: {type(exc).__name__}: {exc}"[:300]
        return None

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

    def _accept(
        self, req: CreateRequest, tenant: str, transport: str, request_id: str | None
    ) -> RunInfo:
        assert req.model is not None
        info = RunInfo(tenant, req.model, transport, request_id=request_id)
        self.observers.accepted(info)
        return info

    @contextlib.asynccontextmanager
    async def _admitted(
        self, req: CreateRequest, info: RunInfo, key: ApiKey | None
    ) -> AsyncIterator[Grant]:
        """May this response start (not shutting down, a model that serves it, the key's
        rate limits: 503, 404/400, 429)? Yields the key's `Grant`. Whatever fails before
        the response starts, here or in the `async with` body, gives the grant back and
        is told to the observers as `rejected`."""
        grant = Grant()
        try:
            if not self.accepting:
                raise ApiError(503, "The server is shutting down.", code="server_shutting_down")
            self.registry.check(info.model, req)
            if not self._mcp_passed_through(info.model):
                toolloop.servers(req, self.mcp, info.tenant)  # 400: a server it may not reach
            if self.limits is not None:
                grant = await self.limits.admit(key, info)
            yield grant
        except Exception as exc:
            await grant.finish(None)
            self.observers.rejected(info, _as_api_error(exc))
            raise
        except BaseException:
            await asyncio.shield(grant.finish(None))
            raise

    def _mcp_passed_through(self, model: str) -> bool:
        """Does `model`'s upstream run `mcp` tools itself (`toolloop.passed_through`)?"""
        return toolloop.passed_through(self.mcp, self.registry.kinds(model))

    @staticmethod
    def _call(req: CreateRequest, items: list[dict[str, Any]], info: RunInfo) -> ModelCall:
        """The model call; the request id goes upstream as `x-request-id`. Its upstream
        attempts are the run's (`info.attempts`, the same list)."""
        headers = {"x-request-id": info.request_id} if info.request_id else {}
        call = ModelCall(req, items, model=info.model, instructions=req.instructions,
                         headers=headers)  # fmt: skip
        info.attempts = call.attempts
        return call

    def _opened(self, info: RunInfo, call: ModelCall) -> None:
        """Record who serves the call (the last attempt, a built-in model, or no one for a
        prewarm: logs and traces say `provider=prewarm`)."""
        if call.attempts:
            info.provider = call.attempts[-1].provider
            info.upstream_model = call.attempts[-1].upstream_model
        elif call.request.generate is False:
            info.provider, info.upstream_model = "prewarm", None
        else:
            info.provider, info.upstream_model = "builtin", call.model
        self.observers.upstream_opened(info)

    async def create(
        self,
        req: CreateRequest,
        *,
        tenant: str = "",
        key: ApiKey | None = None,
        context: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        transport: str | None = None,
        reasoning_events: ReasoningEvents | None = None,
        surface: SurfaceFactory | None = None,
    ) -> Run:
        """Start a response; raises `ApiError` for anything that fails before the first byte.
        `key`: the caller's API key (its rate limits). `context`: the model context already
        resolved by `context()` (WebSocket mode). `request_id` and `transport` ("sse",
        "json", "websocket") are for the observers. `reasoning_events`: the raw reasoning
        event names (None: the engine's). `surface`: makes the builder of another inbound
        surface (Chat Completions, Messages), whose events the run then yields instead of
        the Responses events; the Responses builder still keeps the record."""
        info = self._accept(req, tenant, transport or ("sse" if req.stream else "json"), request_id)
        call = self._call(req, [], info)
        compacting = carry.is_compaction_trigger(req.items)
        async with self._admitted(req, info, key) as grant:
            _, items = await self._prepare(req, tenant, call, context, compacting)
            signals = await self._open(info, call, tenant, compacting)
        self._opened(info, call)
        response = new_response(req, new_id("response"), self._now())
        builder = self._builder(req, response, tenant, info, reasoning_events)
        opening = builder.open()
        surface_builder = None if surface is None else surface(builder.snapshot(), info.provider)
        if surface_builder is not None:
            opening = surface_builder.open()
        persist = start = None
        if req.store is not False and self.store is not None:
            start = StartRecord(
                self.store, StoredResponse(builder.snapshot(), list(req.items), tenant)
            )
            persist = self._persist_for(req, tenant, start)
        persist = self._then_append(req, tenant, persist)
        run = Run(
            builder,
            signals,
            _then_finish(persist, grant),
            info=info,
            observers=self.observers,
            surface=surface_builder,
            start=start,
        )
        run.context = items
        run.warnings[:0] = req.warnings
        run.warnings += [w for w in call.warnings if w not in run.warnings]
        run.headers = grant.headers
        run.push(opening)
        self._track(run, grant)
        return run

    def _track(self, run: Run, grant: Grant) -> None:
        self.runs.add(run)
        run.start()
        assert run.task is not None

        def done(_: object) -> None:
            self.runs.discard(run)
            if not grant.finished:  # ended without its terminal step (cancelled outright)
                self._spawn(grant.finish(run.response.get("usage")))

        run.task.add_done_callback(done)

    async def create_background(
        self,
        req: CreateRequest,
        *,
        tenant: str = "",
        key: ApiKey | None = None,
        request_id: str | None = None,
        reasoning_events: ReasoningEvents | None = None,
    ) -> Queued:
        """Queue a background response and return it (status `queued`); generation runs in
        a task whose every event is appended to the response's log."""
        info = self._accept(req, tenant, "background", request_id)
        async with self._admitted(req, info, key) as grant:
            if self.store is None:
                raise invalid("Background responses need a configured store.", "background")
            call = self._call(req, [], info)
            compacting = carry.is_compaction_trigger(req.items)
            await self._prepare(req, tenant, call, None, compacting)
            response = new_response(req, new_id("response"), self._now())
            builder = self._builder(req, response, tenant, info, reasoning_events)
            queued = builder.open(queued=True)
            await self.store.save(StoredResponse(builder.response, list(req.items), tenant))
            await self.store.append_events(response["id"], queued)
        snapshot = builder.snapshot()
        run = Run(
            builder,
            self._open_signals(info, call, tenant, compacting),
            _then_finish(self._then_append(req, tenant, None), grant),
            info=info,
            observers=self.observers,
        )
        run.push(builder.run())
        self.background[run.response_id] = run
        self._track(run, grant)
        self._spawn(self._log(run))
        return Queued(snapshot, grant.headers)

    async def _open(
        self, info: RunInfo, call: ModelCall, tenant: str, compacting: bool
    ) -> AsyncIterator[Signal]:
        """The call's signals: none from a model for a prewarm (`generate: false`), else
        the provider's; when `compacting`, folded into one `Compaction` (the summary
        sealed for `tenant`). Raises `ApiError` when the provider cannot be opened."""
        if call.request.generate is False:
            signals = prewarm()
        elif call.request.mcp and not compacting and not self._mcp_passed_through(info.model):
            servers = toolloop.servers(call.request, self.mcp, tenant)
            opener = functools.partial(self.registry.open, info.model)
            used = functools.partial(self.observers.tool_used, info)
            signals = await toolloop.ToolLoop(call, servers, self.mcp, opener, used).open()
        else:
            signals = await self.registry.open(info.model, call)
        if not compacting:
            return signals
        call.warnings += getattr(signals, "warnings", ())  # the wrapper has none of its own
        return carry.compacting(signals, lambda summary: self._seal_summary(tenant, summary))

    async def _open_signals(
        self, info: RunInfo, call: ModelCall, tenant: str, compacting: bool
    ) -> AsyncIterator[Signal]:
        """`_open`'s signals, with an error while opening the provider as a `Failure`
        (a background run has already answered its request)."""
        try:
            signals = await self._open(info, call, tenant, compacting)
        except ApiError as err:
            yield Failure(err.code or "upstream_error", err.message)
            return
        self._opened(info, call)
        try:
            async for signal in signals:
                yield signal
        finally:
            await close_quietly(signals)

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

    # ------------------------------------------------------------ sealed items

    async def _load_seal_key(self) -> None:
        """Take the store's seal key (made by whichever process came first) unless one
        was configured; a 503 while the store cannot be read."""
        if not self._seal_key_pending:
            return
        secret = getattr(self.store, "secret", None)
        if secret is None:
            self._seal_key_pending = False
            log.warning("no seal key and no store: sealed items are valid in this process only")
            return
        try:
            key = decode_key(await secret("seal_key", new_key()))
        except Exception as exc:
            log.warning("reading the seal key from the store failed: %s", exc)
            raise ApiError(503, "The store is unavailable; try again.",
                           code="store_unavailable") from None  # fmt: skip
        self.sealer = Sealer(key)
        self._seal_key_pending = False

    async def _prepare(
        self,
        req: CreateRequest,
        tenant: str,
        call: ModelCall,
        context: list[dict[str, Any]] | None,
        compacting: bool,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Fill in `call.items`: the model context (`context`, else loaded) with compaction
        items turned back into their summaries and reasoning carriers opened
        (`carry.open_context`); when `compacting`, the call becomes the summary call.
        Returns the context as the client named it and as opened."""
        await self._load_seal_key()
        items = context if context is not None else await self.context(req, tenant)
        chained = len(items) - len(req.items)  # the first ones came from the store

        def param(i: int) -> str:
            return "previous_response_id" if i < chained else f"input[{i - chained}]"

        call.items = carry.open_context(items, self.sealer, tenant, call.warnings, param)
        opened = call.items
        if compacting:
            self._compaction_call(call)
        return items, opened

    def _builder(
        self,
        req: CreateRequest,
        response: dict[str, Any],
        tenant: str,
        info: RunInfo,
        reasoning_events: ReasoningEvents | None,
    ) -> ResponseBuilder:
        """The response's builder; its reasoning items carry what the provider that made
        them (`info.provider`, known once the call is open) needs to see them again.
        `reasoning_events`: the raw reasoning event names (None: the engine's)."""

        def seal(item: dict[str, Any]) -> str:
            payload = {"provider": info.provider, **carry.reasoning_payload(item)}
            return self.sealer.seal("reasoning", tenant, payload)

        expose = "reasoning.encrypted_content" in (req.include or ())
        return ResponseBuilder(
            response,
            clock=self._now,
            carry=seal,
            expose_carried=expose,
            reasoning_events=reasoning_events or self.reasoning_events,
        )

    def _seal_summary(self, tenant: str, summary: str) -> str:
        return self.sealer.seal("compaction", tenant, {"summary": summary})

    @staticmethod
    def _compaction_call(call: ModelCall) -> None:
        """Turn `call` into the call that writes a compaction summary of its items: the
        summary request appended, the compaction instructions added, tools kept (the
        prompt prefix stays cacheable) but not callable; `mcp` tools left out (an upstream
        that runs them itself would list their servers)."""
        call.items = carry.compaction_call_items(call.items)
        call.instructions = "\n\n".join(
            text for text in (call.instructions, carry.COMPACTION_INSTRUCTIONS) if text
        )
        tools = [t for t in call.request.tools or [] if t.get("type") != "mcp"] or None
        call.request = msgspec.structs.replace(
            call.request, tools=tools, tool_choice="none" if tools else None, text=None, mcp={}
        )

    async def compact(
        self,
        body: CompactRequest,
        *,
        tenant: str = "",
        key: ApiKey | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """`POST /v1/responses/compact`: the context (previous chain + input) compacted
        into a window to start a new chain from: its user messages, then one compaction
        item holding the routed model's summary of the whole."""
        req = body.as_create_request()
        info = self._accept(req, tenant, "compact", request_id)
        call = self._call(req, [], info)
        async with self._admitted(req, info, key) as grant:
            items, _ = await self._prepare(req, tenant, call, None, True)
            compacted = await self._open(info, call, tenant, compacting=True)
            self._opened(info, call)
            summary: str | None = None
            usage: dict[str, Any] | None = None
            async with contextlib.aclosing(compacted):
                async for signal in compacted:
                    if isinstance(signal, Compaction):
                        summary = signal.encrypted_content
                    elif isinstance(signal, Usage):
                        usage = usage_object(
                            signal.input_tokens,
                            signal.output_tokens,
                            signal.cached_tokens,
                            signal.reasoning_tokens,
                            signal.cache_write_tokens,
                        )
                    elif isinstance(signal, Failure):
                        raise carry.compaction_failure(signal)
            if summary is None:
                raise carry.compaction_failure(
                    Failure("upstream_truncated", "the upstream stream ended early")
                )
            kept = carry.retained(items)
            compaction = {"id": new_id("compaction"), "type": "compaction",
                          "encrypted_content": summary}  # fmt: skip
            info.response_id = new_id("response")
            result = {
                "id": info.response_id,
                "object": "response.compaction",
                "created_at": self._now(),
                "output": [*kept, compaction],
                "usage": usage or usage_object(0, 0),
            }
            await grant.finish(result["usage"])
        self.observers.finished(info, {**result, "status": "completed", "model": info.model})
        self.observers.released(info)  # answered in one piece: nothing left to deliver
        return result

    async def context(
        self, req: CreateRequest, tenant: str = "", *, chain: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The model context: the previous chain, then this request's input with every
        `item_reference` replaced by the item it names (`req.items` is updated too).
        `chain`: the previous response's items already in hand (a WebSocket connection's
        cache); otherwise the chain is loaded from the store. With `conversation`, its
        items come first instead (and `req.items` get their ids)."""
        req.items = await self.resolve_items(req.items, tenant)
        if req.conversation_id is not None:
            held = await self.conversations.context(req.conversation_id, tenant, req.items)
            return [*held, *req.items]
        if req.previous_response_id is None:
            return list(req.items)
        if chain is not None:
            return [*chain, *req.items]
        previous_id = req.previous_response_id
        missing = previous_response_not_found(previous_id)
        found = None if self.store is None else await self.store.load_chain(previous_id, tenant)
        if found is None:
            raise missing
        if found.status in ACTIVE_STATUSES:
            raise invalid(
                f"Previous response with id {quote(previous_id)} is still {found.status}; "
                "continue it once it has finished.",
                "previous_response_id",
                code="previous_response_in_progress",
            )
        if found.items is None:
            raise missing
        return [*found.items, *req.items]

    async def resolve_items(
        self, items: list[dict[str, Any]], tenant: str, param: str = "input"
    ) -> list[dict[str, Any]]:
        """`items` with every `item_reference` replaced by the stored item it names
        (404 naming `{param}[i].id` for an unknown one)."""
        return [await self._resolve(item, f"{param}[{i}]", tenant) for i, item in enumerate(items)]

    async def _resolve(self, item: dict[str, Any], where: str, tenant: str) -> dict[str, Any]:
        if item["type"] != "item_reference":
            return item
        found = None if self.store is None else await self.store.get_item(item["id"], tenant)
        if found is None:
            raise not_found(
                f"Item with id {quote(item['id'])} not found.",
                "item_not_found",
                f"{where}.id",
            )
        return found

    def _persist_for(
        self, req: CreateRequest, tenant: str, start: StartRecord
    ) -> Callable[[Run], Awaitable[None]]:
        """The final save, after the in_progress record `start` (whatever became of it)."""

        async def persist(run: Run) -> None:
            assert self.store is not None
            await start.written()
            await self.store.save(StoredResponse(run.builder.stored(), list(req.items), tenant))

        return persist

    def _then_append(
        self, req: CreateRequest, tenant: str, persist: Callable[[Run], Awaitable[None]] | None
    ) -> Callable[[Run], Awaitable[None]] | None:
        """The final save, then the turn appended to the request's `conversation`."""
        conversation_id = req.conversation_id
        if conversation_id is None:
            return persist

        async def step(run: Run) -> None:
            try:
                if persist is not None:
                    await persist(run)
            finally:
                await self.conversations.append_turn(
                    conversation_id, tenant, req.items, run.response
                )

        return step

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
        include: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """A page of a stored response's input items, as OpenAI lists them (canonical, and
        shown as `include` asks: `protocol.items`)."""
        page = await self._stored().input_items(
            response_id, tenant, limit=limit, order=order, after=after
        )  # type: ignore[arg-type]
        if page is None:
            raise self._missing(response_id)
        page.data = [shown(canonical(item), include) for item in page.data]
        return page.wire()

    async def list_responses(self, tenant: str | None, query: ResponseQuery) -> dict[str, Any]:
        """`GET /v1/responses`: a page of stored responses (`tenant` None: every tenant's)."""
        return (await self._stored().list_responses(tenant, query)).wire()

    async def update_metadata(
        self, response_id: str, metadata: dict[str, str], *, tenant: str = ""
    ) -> dict[str, Any]:
        """Replace a stored response's `metadata`; the updated Response."""
        response = await self._stored().update_metadata(response_id, tenant, metadata)
        if response is None:
            raise self._missing(response_id)
        return response

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
        self.draining = True
        pending = [r.task for r in self.runs if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for run in list(self.runs):
            run.abort(*SHUTDOWN)
        pending = [r.task for r in self.runs if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._expirer is not None:
            self._expirer.cancel()
        await self.observers.aclose()  # the usage log is written before the store closes
        if self.limits is not None:
            await self.limits.aclose()
        await self.registry.aclose()
        if self.store is not None and self._open_store is not None:
            await self.store.close()  # opened here, closed here
