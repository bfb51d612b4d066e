"""Counters in Redis, shared by every replica pointed at it (`[limits] redis_url`).

Each key's state is three Redis keys with one hash tag (so a Redis Cluster keeps
them in one slot): `<prefix>{<subject>}:requests` and `:tokens` hold when that
bucket is full again (milliseconds, Redis's own clock, so replicas' clocks do not
matter), and `:streams` is a sorted set of slot leases scored by their expiry.
Admission is one Lua script (check every limit, then take them all or nothing).
A lease lives `lease_seconds` and this process refreshes its live leases every
third of that; a process that dies stops refreshing, and its slots are dropped at
the next admission after they expire, so they never leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import PERIOD, CountersUnavailable, Decision, Quota, window

log = logging.getLogger("respgate.limits.redis")

# The same rule as `limits.decide`, in milliseconds (buckets compared by their distance
# from full, never as absolute times, which rounding would make refuse a full bucket). ARGV: period, rpm, tpm, streams,
# lease, lease_ms. Returns {refused, retry_ms, requests_full_in_ms, tokens_full_in_ms, streams}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local period, rpm, tpm, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refused, retry = '', 0
local r_ahead = math.max((tonumber(redis.call('GET', KEYS[1])) or now) - now, 0)
local t_ahead = math.max((tonumber(redis.call('GET', KEYS[2])) or now) - now, 0)
local r_new = r_ahead
if rpm > 0 then
  r_new = r_ahead + period / rpm
  if r_new > period then refused = 'requests_per_minute'; retry = r_new - period end
end
if tpm > 0 then
  local wait = t_ahead + period / tpm - period
  if wait > 0 then
    if refused == '' then refused = 'tokens_per_minute' end
    retry = math.max(retry, wait)
  end
end
local streams = 0
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  streams = redis.call('ZCARD', KEYS[3])
  if streams >= limit then
    if refused == '' then refused = 'concurrent_streams' end
    retry = math.max(retry, 1000)
  end
end
if refused == '' then
  if rpm > 0 then
    r_ahead = r_new
    redis.call('SET', KEYS[1], tostring(now + r_new), 'PX', math.ceil(r_new) + 1000)
  end
  if limit > 0 then
    local lease_ms = tonumber(ARGV[6])
    redis.call('ZADD', KEYS[3], now + lease_ms, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], lease_ms * 2)
    streams = streams + 1
  end
end
return {refused, math.ceil(retry), math.ceil(r_ahead), math.ceil(t_ahead), streams}
"""

# The end of a response: its slot back and its tokens taken.
# KEYS: streams, tokens. ARGV: lease ('' for none), tokens, tpm, period.
FINISH = """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
local tokens, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
if tokens > 0 and tpm > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local tat = math.max(tonumber(redis.call('GET', KEYS[2])) or now, now)
  tat = tat + tokens * tonumber(ARGV[4]) / tpm
  redis.call('SET', KEYS[2], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
end
return 1
"""

# ARGV: lease, lease_ms. Only a lease still present is extended (never resurrected).
REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""


class RedisCounters:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "respgate:limits:",
        lease_seconds: float = 30.0,
        timeout: float = 1.0,
        down_for: float = 1.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.lease_ms = int(lease_seconds * 1000)
        self.timeout = timeout
        self.down_for = down_for  # after a failure, fail fast for this long
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._live: dict[str, str] = {}  # lease -> subject, refreshed while running
        self._refresher: asyncio.Task[None] | None = None
        self._down_until = 0.0

    def _redis(self) -> Any:
        if self._client is None:
            self._client = aioredis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            for name, lua in (("admit", ADMIT), ("finish", FINISH), ("refresh", REFRESH)):
                self._scripts[name] = self._client.register_script(lua)
        return self._client

    def _keys(self, subject: str) -> list[str]:
        base = f"{self.prefix}{{{subject}}}"
        return [f"{base}:requests", f"{base}:tokens", f"{base}:streams"]

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        if time.monotonic() < self._down_until:
            raise CountersUnavailable("Redis was unreachable a moment ago")
        self._redis()
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self.down_for
            raise CountersUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def admit(self, subject: str, quota: Quota, lease: str) -> Decision:
        refused, retry_ms, r_full, t_full, streams = await self._call(
            "admit",
            self._keys(subject),
            [
                int(PERIOD * 1000),
                quota.requests_per_minute,
                quota.tokens_per_minute,
                quota.concurrent_streams,
                lease,
                self.lease_ms,
            ],
        )
        refused = refused.decode() if isinstance(refused, bytes) else refused
        if not refused and quota.concurrent_streams:
            self._live[lease] = subject
            if self._refresher is None or self._refresher.done():
                self._refresher = asyncio.create_task(self._refresh_loop())
        return Decision(
            refused or None,
            retry_ms / 1000,
            window(quota.requests_per_minute, r_full / 1000) if quota.requests_per_minute else None,
            window(quota.tokens_per_minute, t_full / 1000) if quota.tokens_per_minute else None,
            int(streams),
        )

    async def finish(self, subject: str, quota: Quota, lease: str | None, tokens: int) -> None:
        if lease is not None:
            self._live.pop(lease, None)
        keys = self._keys(subject)
        await self._call(
            "finish",
            [keys[2], keys[1]],
            [lease or "", tokens, quota.tokens_per_minute, int(PERIOD * 1000)],
        )

    async def _refresh_loop(self) -> None:
        while self._live:
            await asyncio.sleep(self.lease_ms / 3000)
            for lease, subject in list(self._live.items()):
                try:
                    await self._call("refresh", self._keys(subject)[2:], [lease, self.lease_ms])
                except CountersUnavailable as exc:
                    log.warning("refreshing rate-limit slots failed: %s", exc)
                    break

    def stop_refreshing(self) -> None:
        """Stop extending this process's leases (as if it died; for tests)."""
        self._live.clear()
        if self._refresher is not None:
            self._refresher.cancel()

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for lease, subject in list(self._live.items()):
            with contextlib.suppress(CountersUnavailable):
                await self.finish(subject, Quota(), lease, 0)
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
