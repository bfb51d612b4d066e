"""The counting rule on both backends (in-process and real Redis), and the `Limits` front."""

from __future__ import annotations

import asyncio
import time

import pytest

from respgate.limits import (
    PERIOD,
    CountersUnavailable,
    Decision,
    Limits,
    Quota,
    decide,
    duration,
    rate_headers,
)
from respgate.limits.redis import RedisCounters
from respgate.observe import RunInfo
from respgate.protocol.errors import ApiError
from respgate.store.keys import ApiKey
from tests.support.live import free_port

from .conftest import MakeCounters


async def test_requests_per_minute_then_refused_with_nothing_taken(
    make_counters: MakeCounters,
) -> None:
    a, b = make_counters(), make_counters()  # two replicas share the budget (Redis)
    quota = Quota(requests_per_minute=3)
    remaining = []
    for counters in (a, b, a):
        decision = await counters.admit("k", quota, "")
        assert decision.refused is None
        assert decision.requests is not None
        remaining.append(decision.requests.remaining)
    assert remaining == [2, 1, 0]
    for counters in (b, a):
        refused = await counters.admit("k", quota, "")
        assert refused.refused == "requests_per_minute"
        assert 15 < refused.retry_after <= 20.1  # one request refills every 20 s
        assert refused.requests is not None and refused.requests.remaining == 0
        assert 55 < refused.requests.reset <= 60.1
    assert (await a.admit("other-key", quota, "")).refused is None


async def test_tokens_are_charged_after_and_may_go_into_debt(make_counters: MakeCounters) -> None:
    counters = make_counters()
    quota = Quota(tokens_per_minute=100)
    first = await counters.admit("k", quota, "")
    assert first.refused is None and first.tokens is not None and first.tokens.remaining == 100
    await counters.finish("k", quota, None, 40)
    second = await counters.admit("k", quota, "")
    assert second.refused is None and second.tokens is not None
    assert second.tokens.remaining in (59, 60)
    await counters.finish("k", quota, None, 110)  # 150 used of 100: 50 in debt
    refused = await counters.admit("k", quota, "")
    assert refused.refused == "tokens_per_minute"
    assert refused.tokens is not None and refused.tokens.remaining == 0
    assert 29 < refused.retry_after <= 30.7  # 51 tokens at 100/min


async def test_stream_slots_are_held_until_released(make_counters: MakeCounters) -> None:
    a, b = make_counters(), make_counters()
    quota = Quota(concurrent_streams=2)
    assert (await a.admit("k", quota, "lease-1")).streams == 1
    assert (await b.admit("k", quota, "lease-2")).streams == 2
    refused = await a.admit("k", quota, "lease-3")
    assert refused.refused == "concurrent_streams" and refused.retry_after >= 1
    await a.finish("k", quota, "lease-1", 0)
    assert (await b.admit("k", quota, "lease-3")).refused is None


async def test_a_refusal_takes_nothing_from_the_other_limits(make_counters: MakeCounters) -> None:
    counters = make_counters()
    quota = Quota(requests_per_minute=10, concurrent_streams=1)
    first = await counters.admit("k", quota, "lease-1")
    assert first.requests is not None and first.requests.remaining == 9
    refused = await counters.admit("k", quota, "lease-2")
    assert refused.refused == "concurrent_streams"
    await counters.finish("k", quota, "lease-1", 0)
    again = await counters.admit("k", quota, "lease-3")
    assert again.refused is None and again.requests is not None
    assert again.requests.remaining == 8  # the refused request was not counted


@pytest.mark.redis
async def test_a_dead_process_slots_expire_and_a_live_one_keeps_them(prefix: str) -> None:
    from .conftest import redis_url

    url = redis_url()
    quota = Quota(concurrent_streams=1)
    dead = RedisCounters(url, prefix=prefix, lease_seconds=0.6)
    live = RedisCounters(url, prefix=prefix, lease_seconds=0.6)
    other = RedisCounters(url, prefix=prefix, lease_seconds=0.6)
    try:
        assert (await dead.admit("gone", quota, "l1")).refused is None
        assert (await live.admit("alive", quota, "l2")).refused is None
        dead.stop_refreshing()  # as if the process was killed
        assert (await other.admit("gone", quota, "l3")).refused == "concurrent_streams"
        deadline = time.monotonic() + 10
        while (await other.admit("gone", quota, "l3")).refused is not None:
            assert time.monotonic() < deadline, "a dead process's slot never expired"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # more than two lease lifetimes: refreshed meanwhile
        assert (await other.admit("alive", quota, "l4")).refused == "concurrent_streams"
    finally:
        for counters in (dead, live, other):
            await counters.aclose()


def info(tenant: str = "t") -> RunInfo:
    return RunInfo(tenant, "m", "sse")


async def test_unreachable_redis_fails_open_or_closed(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    quota = Quota(requests_per_minute=1)
    counters = RedisCounters(url, timeout=0.5)
    with pytest.raises(CountersUnavailable):
        await counters.admit("k", quota, "")
    open_ = Limits(quota, RedisCounters(url, timeout=0.5), on_error="open")
    run = info()
    for _ in range(3):
        grant = await open_.admit(None, run)
        assert grant.headers == {}
        await grant.finish({"input_tokens": 5, "output_tokens": 5})
    assert run.limits_error == "redis_unavailable" and open_.errors >= 3
    logged = [r for r in caplog.records if r.name == "respgate.limits"]
    assert len(logged) == 1 and "on_redis_error = open" in logged[0].getMessage()  # rate-limited
    closed = Limits(quota, RedisCounters(url, timeout=0.5), on_error="closed")
    with pytest.raises(ApiError) as refused:
        await closed.admit(None, info())
    assert refused.value.status == 503 and refused.value.code == "rate_limits_unavailable"
    assert refused.value.body()["error"]["type"] == "server_error"
    for limits in (open_, closed):
        await limits.aclose()
    await counters.aclose()


async def test_a_key_overrides_the_defaults_and_the_429_names_the_limit() -> None:
    limits = Limits(Quota(requests_per_minute=100, tokens_per_minute=1000))
    key = ApiKey("team", "abc", {"requests_per_minute": 1, "concurrent_streams": 0})
    assert limits.quota(key) == Quota(1, 1000, 0)
    assert limits.quota(None) == Quota(100, 1000, 0)
    grant = await limits.admit(key, info("team"))
    assert grant.headers["x-ratelimit-limit-requests"] == "1"
    assert grant.headers["x-ratelimit-remaining-requests"] == "0"
    assert grant.headers["x-ratelimit-limit-tokens"] == "1000"
    with pytest.raises(ApiError) as refused:
        await limits.admit(key, info("team"))
    err = refused.value
    assert err.status == 429 and err.code == "requests_per_minute_exceeded"
    assert err.body()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(err.headers["retry-after"]) <= 60
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    # another key of the same tenant has its own budget
    other = ApiKey("team", "def", {"requests_per_minute": 1})
    assert (await limits.admit(other, info("team"))).headers


def test_reset_durations_read_like_openai() -> None:
    assert duration(0.0172) == "18ms"
    assert duration(1) == "1s"
    assert duration(2.5) == "2.5s"
    assert duration(360) == "6m0s"
    assert duration(61.25) == "1m1.25s"
    assert rate_headers(Decision(None, 0, None, None, 0)) == {}  # no limit in force


def test_a_full_bucket_admits_where_now_plus_a_period_crosses_a_power_of_two() -> None:
    # 8174.863114387938 + 60 rounds up past 8192 (2**13): as absolute times the bucket
    # would look over its limit by a rounding error and refuse a fresh key.
    now = 8174.863114387938
    assert (now + PERIOD) - now > PERIOD  # the rounding the rule must not depend on
    decision, tat = decide(now, Quota(requests_per_minute=1), now, now, 0)
    assert decision.refused is None
    again = decide(now, Quota(requests_per_minute=1), tat, now, 0)[0]  # the second, at once
    assert again.refused == "requests_per_minute"
