"""Per-key rate limits: requests per minute, tokens per minute, concurrent streams.

The engine asks `Limits.admit()` whether a response may start (raising a 429
`ApiError` that names the limit, or a 503 when the counters cannot be reached and
`on_redis_error = "closed"`) and gets a `Grant`: the `x-ratelimit-*` headers for
the response and, with a stream limit, a slot. `Grant.finish(usage)` gives the slot
back and charges the response's real tokens; the engine calls it when the run
reaches its terminal event, whatever ended it.

Counting (the same in both backends, `memory` in-process and `redis` shared by
replicas) is a token bucket per limit ("GCRA"): a budget of N per minute refills
continuously at N/60 per second and holds at most N. A request takes 1 from the
requests bucket; a response's input + output tokens are taken from the tokens
bucket after it ends (it may go into debt: then new requests wait until it refills
to at least one token). So there are no window edges where twice the limit gets
through, and `x-ratelimit-reset-*` is the time until the bucket is full again.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..config import LimitsConfig
from ..observe import RunInfo
from ..protocol.errors import ApiError
from ..store.keys import ApiKey

log = logging.getLogger("respgate.limits")

PERIOD = 60.0  # seconds: every limit is per minute
OnError = Literal["open", "closed"]
CODES = {
    "requests_per_minute": "requests_per_minute_exceeded",
    "tokens_per_minute": "tokens_per_minute_exceeded",
    "concurrent_streams": "concurrent_streams_exceeded",
}
LOG_EVERY = 60.0  # seconds between two log lines about unreachable counters


@dataclass(frozen=True, slots=True)
class Quota:
    """One key's limits; 0 = unlimited."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    concurrent_streams: int = 0

    @property
    def unlimited(self) -> bool:
        return not (self.requests_per_minute or self.tokens_per_minute or self.concurrent_streams)


@dataclass(frozen=True, slots=True)
class Window:
    """A bucket's state for the headers: its size, what is left, seconds until full."""

    limit: int
    remaining: int
    reset: float


@dataclass(frozen=True, slots=True)
class Decision:
    refused: str | None  # the limit that refused (a `Quota` field name), or None
    retry_after: float  # seconds, when refused
    requests: Window | None
    tokens: Window | None
    streams: int  # slots in use (with this one, when admitted)


class CountersUnavailable(Exception):
    """The shared counters (Redis) cannot be reached."""


class Counters(Protocol):
    """Where the buckets and slots live (`MemoryCounters`, `RedisCounters`)."""

    async def admit(self, subject: str, quota: Quota, lease: str) -> Decision:
        """Check every limit of `quota`; when all allow, take a request and (with a
        stream limit) the slot `lease`, atomically. Refused: nothing is taken."""

    async def finish(self, subject: str, quota: Quota, lease: str | None, tokens: int) -> None:
        """A response ended: give back the slot `lease` and take `tokens` from the tokens
        bucket (it may go into debt), atomically."""

    async def aclose(self) -> None: ...


def decide(
    now: float, quota: Quota, requests_tat: float, tokens_tat: float, streams: int
) -> tuple[Decision, float]:
    """The admission rule, shared by every backend (`redis.py` runs it as Lua).
    `*_tat`: when each bucket will be full again (<= now: full); `streams`: slots in
    use. Returns the decision and the requests bucket's new full-again time."""
    refused: str | None = None
    retry = 0.0
    rpm, tpm, limit = quota.requests_per_minute, quota.tokens_per_minute, quota.concurrent_streams
    # How far each bucket is from full, in seconds. Compared as such, never as absolute
    # times: `(now + 60) - now` can exceed 60 by a rounding error and refuse a full bucket.
    r_ahead, t_ahead = max(requests_tat - now, 0.0), max(tokens_tat - now, 0.0)
    r_new = r_ahead
    if rpm:
        r_new = r_ahead + PERIOD / rpm
        if r_new > PERIOD:
            refused, retry = "requests_per_minute", r_new - PERIOD
    if tpm:
        wait = t_ahead + PERIOD / tpm - PERIOD
        if wait > 0:
            refused, retry = refused or "tokens_per_minute", max(retry, wait)
    if limit and streams >= limit:
        refused, retry = refused or "concurrent_streams", max(retry, 1.0)
    if refused is None:
        r_ahead = r_new
        streams += bool(limit)
    return Decision(
        refused,
        retry,
        window(rpm, r_ahead) if rpm else None,
        window(tpm, t_ahead) if tpm else None,
        streams,
    ), now + r_ahead


def window(limit: int, full_in: float) -> Window:
    """A bucket of `limit` per minute that is full again in `full_in` seconds."""
    used = full_in * limit / PERIOD
    return Window(limit, max(0, math.floor(limit - used + 1e-9)), max(0.0, full_in))


def duration(seconds: float) -> str:
    """OpenAI's `x-ratelimit-reset-*` format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def rate_headers(decision: Decision) -> dict[str, str]:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the limits in force."""
    headers = {}
    for name, window in (("requests", decision.requests), ("tokens", decision.tokens)):
        if window is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{name}"] = duration(window.reset)
    return headers


def refusal(decision: Decision, quota: Quota, tenant: str) -> ApiError:
    """The 429 for a refused decision, with `retry-after` and the rate-limit headers."""
    assert decision.refused is not None
    name = decision.refused
    limit = getattr(quota, name)
    wait = decision.retry_after
    who = f" for tenant '{tenant}'" if tenant else ""
    if name == "concurrent_streams":
        message = (
            f"Too many concurrent streams{who}: the limit is {limit}. "
            "Try again when one of them has finished."
        )
    else:
        what = name.replace("_", " ")
        message = (
            f"Rate limit reached{who} on {what}: the limit is {limit}. "
            f"Please try again in {duration(wait)}."
        )
    headers = {
        **rate_headers(decision),
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }
    return ApiError(429, message, code=CODES[name], headers=headers)


def unavailable() -> ApiError:
    return ApiError(
        503,
        "Rate limits cannot be checked right now (their store is unreachable); try again shortly.",
        code="rate_limits_unavailable",
        headers={"retry-after": "1"},
    )


class Grant:
    """An admitted response: its rate-limit headers and, with a stream limit, its slot."""

    def __init__(
        self,
        limits: Limits | None = None,
        subject: str = "",
        quota: Quota | None = None,
        lease: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._limits = limits
        self.subject = subject
        self.quota = quota or Quota()
        self.lease = lease
        self.headers = headers or {}
        self.finished = limits is None

    async def finish(self, usage: Mapping[str, Any] | None) -> None:
        """Give the slot back and charge the tokens of `usage` (once; later calls do nothing).
        Never raises: an unreachable Redis is logged and counted."""
        if self.finished:
            return
        self.finished = True
        assert self._limits is not None
        await self._limits._finish(self, usage)


class Limits:
    """The limits of every key: `defaults` (`[limits]`), overridden per key (`[[keys]]`),
    counted in `counters` (in-process unless given `RedisCounters`).
    `errors` counts the times the counters could not be reached (for metrics)."""

    def __init__(
        self,
        defaults: Quota = Quota(),
        counters: Counters | None = None,
        *,
        on_error: OnError = "open",
    ) -> None:
        from .memory import MemoryCounters

        self.defaults = defaults
        self.counters = counters if counters is not None else MemoryCounters()
        self.on_error = on_error
        self.errors = 0
        self._last_log = -math.inf
        self._unlogged = 0

    def quota(self, key: ApiKey | None) -> Quota:
        if key is None or not key.limits:
            return self.defaults
        values = {
            name: key.limits.get(name, getattr(self.defaults, name))
            for name in Quota.__dataclass_fields__
        }
        return Quota(**values)

    async def admit(self, key: ApiKey | None, run: RunInfo) -> Grant:
        """May this response start? A `Grant` if so; `ApiError` 429 (or 503) if not."""
        quota = self.quota(key)
        if quota.unlimited:
            return Grant()
        subject = key.id if key is not None and key.id else f"tenant:{run.tenant}"
        lease = secrets.token_hex(8) if quota.concurrent_streams else ""
        try:
            decision = await self.counters.admit(subject, quota, lease)
        except CountersUnavailable as exc:
            self._failed("checking", exc)
            run.limits_error = "redis_unavailable"
            if self.on_error == "closed":
                raise unavailable() from None
            return Grant()
        if decision.refused is not None:
            raise refusal(decision, quota, run.tenant)
        return Grant(self, subject, quota, lease or None, rate_headers(decision))

    async def _finish(self, grant: Grant, usage: Mapping[str, Any] | None) -> None:
        tokens = 0
        if usage:
            tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        if grant.lease is None and not (tokens and grant.quota.tokens_per_minute):
            return
        try:
            await self.counters.finish(grant.subject, grant.quota, grant.lease, tokens)
        except CountersUnavailable as exc:
            self._failed("updating", exc)  # a slot in Redis expires with its lease
        except Exception:
            log.exception("updating the rate-limit counters failed")

    def _failed(self, doing: str, exc: Exception) -> None:
        """Count, and log at most once a minute (with how many were not logged)."""
        self.errors += 1
        now = time.monotonic()
        if now - self._last_log < LOG_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        log.warning(
            "rate limits: %s the counters failed, requests %s: %s%s",
            doing,
            "are refused (on_redis_error = closed)"
            if self.on_error == "closed"
            else "go through unlimited (on_redis_error = open)",
            exc,
            more,
        )
        self._last_log, self._unlogged = now, 0

    async def aclose(self) -> None:
        await self.counters.aclose()


def from_config(section: LimitsConfig) -> Limits:
    """`Limits` from the typed `[limits]` section (see README "Limits and usage")."""
    defaults = Quota(
        section.requests_per_minute, section.tokens_per_minute, section.concurrent_streams
    )
    counters: Counters | None = None
    if section.redis_url:
        from .redis import RedisCounters

        counters = RedisCounters(section.redis_url)
    return Limits(defaults, counters, on_error=section.on_redis_error)


__all__ = [
    "Counters",
    "CountersUnavailable",
    "Decision",
    "Grant",
    "Limits",
    "Quota",
    "Window",
    "decide",
    "duration",
    "from_config",
    "rate_headers",
    "window",
]
