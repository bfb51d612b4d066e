"""Many deadlines on one loop timer: a heap of small entries instead of a `TimerHandle` each.

An open stream that holds a loop timer for its whole life (the SSE keep-alive) pays a
`TimerHandle` and the loop's own timer record (~0.6 KiB with uvloop, measured in
docs/design.md, issue 11 part 5); a heap entry here is one short list. `call_at` returns the
entry, `cancel` empties it (it stays in the heap until its time, or until cancelled entries
are half the heap, which rebuilds it), and the one loop timer is re-armed only when an
earlier deadline arrives.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable
from typing import Any

Entry = list[Any]  # [when, order, callback, argument]; callback None once cancelled


class Deadlines:
    """Deadlines of one event loop; `for_loop` gives the running loop's."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[Entry] = []
        self._order = itertools.count()  # equal times fire in the order they were set
        self._cancelled = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def call_at(self, when: float, callback: Callable[[Any], object], argument: Any) -> Entry:
        """Call `callback(argument)` at loop time `when` (or soon after); returns the entry."""
        entry = [when, next(self._order), callback, argument]
        heapq.heappush(self._heap, entry)
        if when < self._timer_at:
            self._arm(when)
        return entry

    def cancel(self, entry: Entry) -> None:
        """Cancel a deadline (and drop its references); cancelling twice is harmless."""
        if entry[2] is None:
            return
        entry[2] = entry[3] = None
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def __len__(self) -> int:
        """Deadlines still to fire."""
        return len(self._heap) - self._cancelled

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        # deadlines set by the callbacks themselves wait for the next pass (no arming meanwhile)
        self._timer, self._timer_at = None, float("-inf")
        now, last = self._loop.time(), next(self._order)
        while self._heap and (top := self._heap[0])[1] < last:
            if top[2] is not None and top[0] > now:
                break
            _, _, callback, argument = heapq.heappop(self._heap)
            if callback is None:
                self._cancelled -= 1
                continue
            try:
                callback(argument)
            except Exception as exc:  # one failing callback must not stop the others
                self._loop.call_exception_handler(
                    {"message": "a deadline callback failed", "exception": exc}
                )
        self._timer_at = float("inf")
        if self._heap:
            self._arm(self._heap[0][0])

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> Deadlines:
        deadlines = _PER_LOOP.get(loop)
        if deadlines is None:
            deadlines = _PER_LOOP[loop] = cls(loop)
        return deadlines


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)
