"""The console's tap on runs: an observer that records each run's events (with their time
offsets) while someone watches, for `/console/api/live` and `/console/api/runs/{id}/events`.

Bounded: at most `max_events` events per run (later ones are counted, not kept), the
`recent` most recently finished runs, and nothing at all while nobody watches: a watcher
is an open console stream (`watching()`), and `grace` seconds after the last one left
every recorded run is dropped and the tap records nothing until the next one comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..observe import Observer, RunInfo
from ..protocol.validate import StreamChecker

Event = dict[str, Any]


@dataclass(slots=True)
class Tapped:
    """One run as the tap saw it: its events with their offsets (ms since accepted)."""

    info: RunInfo
    events: list[tuple[float | None, Event]] = field(default_factory=list)
    dropped: int = 0  # events beyond the per-run bound (not kept)
    # the events start at response.created (a background run's opening events are logged
    # before the run starts: its tap sees them from response.in_progress)
    from_start: bool = True

    @property
    def done(self) -> bool:
        return self.info.finished_at is not None

    def verdict(self) -> dict[str, Any]:
        """The strict checker's verdict on the events seen (final once `done`)."""
        if self.dropped:
            return {"checked": False, "reason": f"{self.dropped} events were not kept"}
        checker = StreamChecker(
            require_done=False,
            expect_start=self.from_start,
            websocket=self.info.transport == "websocket",
        )
        for _, event in self.events:
            checker.feed(event)
        violations = checker.close() if self.done else checker.violations
        return {
            "checked": True,
            "final": self.done,
            "violations": [
                {"rule": v.rule, "message": v.message, "index": v.index, "event_type": v.event_type}
                for v in violations
            ],
        }


def summary(info: RunInfo) -> dict[str, Any]:
    """A run for the live list: times in ms from its acceptance."""

    def ms(at: float | None) -> float | None:
        return None if at is None else round((at - info.accepted_at) * 1000, 1)

    return {
        "id": info.response_id,
        "tenant": info.tenant,
        "model": info.model,
        "transport": info.transport,
        "provider": info.provider,
        "status": info.status or ("in_progress" if info.finished_at is None else None),
        "error_code": info.error_code,
        "started_at": round(time.time() - (time.perf_counter() - info.accepted_at), 3),
        "ttft_ms": ms(info.upstream_first_byte_at),
        "duration_ms": ms(info.finished_at),
        "usage": info.usage,
    }


class Tap(Observer):
    def __init__(self, *, max_events: int = 10_000, recent: int = 50, grace: float = 30.0) -> None:
        self.max_events = max_events
        self.recent = recent
        self.grace = grace
        self.runs: OrderedDict[str, Tapped] = OrderedDict()  # in flight and recently finished
        self.watchers = 0
        self.closed = False  # the engine shut down: console streams end
        self._left_at = -float("inf")  # when the last watcher left
        self._pulse = asyncio.Event()
        self._waiting = 0  # streams waiting in `changed()`: no one, no wake-up to make
        self.version = 0  # counts changes: a stream waits for one after the version it saw

    # ------------------------------------------------------------ watchers

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        self.watchers += 1
        try:
            yield
        finally:
            self.watchers -= 1
            if not self.watchers:
                self._left_at = time.monotonic()

    def _recording(self) -> bool:
        if self.watchers or time.monotonic() - self._left_at < self.grace:
            return True
        self.runs.clear()
        return False

    async def changed(self, since: int, timeout: float) -> bool:
        """Wait until something was recorded after `version` was `since` (True at once if
        it already was), or `timeout` seconds passed (False)."""
        if self.version != since:
            return True
        pulse = self._pulse
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout):
                await pulse.wait()
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1
        return True

    async def aclose(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self.version += 1
        if self._waiting:
            self._pulse.set()
            self._pulse = asyncio.Event()

    # ------------------------------------------------------------ the observer

    def emitted(self, run: RunInfo, events: list[Event]) -> None:
        if run.response_id is None or not self._recording():
            return
        tapped = self.runs.get(run.response_id)
        if tapped is None:
            tapped = Tapped(run, from_start=run.transport != "background")
            self.runs[run.response_id] = tapped
        room = self.max_events - len(tapped.events)
        offset = round((time.perf_counter() - run.accepted_at) * 1000, 1)
        tapped.events += [(offset, event) for event in events[: max(room, 0)]]
        tapped.dropped += max(len(events) - max(room, 0), 0)
        self._wake()

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        if run.response_id not in self.runs:
            return
        done = [rid for rid, t in self.runs.items() if t.done]
        for rid in done[: max(len(done) - self.recent, 0)]:
            del self.runs[rid]
        self._wake()
