"""A response in flight: the events a transport drains (`EventSource`), a background
response's log replayed (`Replay`), and `Run`, whose producer task feeds the provider's
signals to the `ResponseBuilder` a read at a time, writes the in_progress record after the
first write (`StartRecord`) and the final save before the terminal event. Every run ends
with exactly one terminal event, whatever happens: upstream truncation, an exception, a
client disconnect, or server shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..deadlines import Deadlines, Entry
from ..limits import Grant
from ..observe import Observers, RunInfo
from ..protocol.builder import ResponseBuilder
from ..protocol.signals import Failure, Signal
from ..protocol.surface import SurfaceBuilder
from ..providers.base import close_quietly
from ..store.base import ResponseStore, StoredResponse

log = logging.getLogger("respgate.engine")

Event = dict[str, Any]
Step = Callable[["Run"], Awaitable[None]]  # a run's terminal step (`on_terminal`)

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
    first byte. The write starts on the loop's next turn, so a response that has ended
    by then (non-streaming, or whole in the upstream reads already in hand when its
    first token went out) is stored once, by its final save (`Run._save` settles the
    record first; the final save awaits a write that had begun)."""

    def __init__(self, store: ResponseStore, record: StoredResponse) -> None:
        self._store = store
        self._record: StoredResponse | None = record
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        if self._record is not None and self._task is None:
            self._task = asyncio.create_task(self._write())

    async def _write(self) -> None:
        record, self._record = self._record, None
        if record is not None:  # (None: settled before this first step)
            # superseded by the final save, which is durable: not flushed to disk itself
            await self._store.save(record, durable=False)

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
        on_terminal: Step | None = None,
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


def then_always(first: Step | None, after: Step) -> Step:
    """`first` (when there is one), then `after`, whatever became of `first`."""

    async def step(run: Run) -> None:
        try:
            if first is not None:
                await first(run)
        finally:
            await after(run)

    return step


def then_finish(persist: Step | None, grant: Grant) -> Step | None:
    """The run's last step before its terminal event: the final save, then the key's
    stream slot given back and its tokens counted (so the next request sees both)."""
    if grant.finished:
        return persist
    return then_always(persist, lambda run: grant.finish(run.response.get("usage")))
