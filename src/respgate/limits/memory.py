"""In-process counters: one process, one budget (the default without `redis_url`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import Decision, Quota, decide


class MemoryCounters:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[str, float] = {}  # subject -> when its bucket is full again
        self._tokens: dict[str, float] = {}
        self._leases: dict[str, set[str]] = {}

    def in_use(self, subject: str) -> int:
        return len(self._leases.get(subject, ()))

    async def admit(self, subject: str, quota: Quota, lease: str) -> Decision:
        now = self._clock()
        leases = self._leases.setdefault(subject, set())
        decision, requests_tat = decide(
            now,
            quota,
            self._requests.get(subject, now),
            self._tokens.get(subject, now),
            len(leases),
        )
        if decision.refused is None:
            self._requests[subject] = requests_tat
            if quota.concurrent_streams:
                leases.add(lease)
        return decision

    async def finish(self, subject: str, quota: Quota, lease: str | None, tokens: int) -> None:
        if lease is not None:
            self._leases.get(subject, set()).discard(lease)
        if tokens and quota.tokens_per_minute:
            now = self._clock()
            full_at = max(self._tokens.get(subject, now), now)
            self._tokens[subject] = full_at + tokens * 60.0 / quota.tokens_per_minute

    async def aclose(self) -> None:
        pass
