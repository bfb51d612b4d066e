"""Rate-limit counters: in-process always, Redis when `RESPGATE_TEST_REDIS_URL` is set
(each test under its own key prefix, deleted after)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from respgate.limits import Counters
from respgate.limits.memory import MemoryCounters
from respgate.limits.redis import RedisCounters

REDIS_URL = os.environ.get("RESPGATE_TEST_REDIS_URL")


def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("RESPGATE_TEST_REDIS_URL is not set")
    return REDIS_URL


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"respgate-test:{secrets.token_hex(6)}:"
    yield value
    if REDIS_URL:
        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{value}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


MakeCounters = Callable[..., Counters]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_counters(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[MakeCounters]:
    """Opens counters of this test's backend; call again for another process's view."""
    opened: list[Counters] = []
    shared = MemoryCounters()

    def make(**options: object) -> Counters:
        if request.param == "memory":
            return shared  # one process: one set of counters
        counters = RedisCounters(redis_url(), prefix=prefix, **options)  # type: ignore[arg-type]
        opened.append(counters)
        return counters

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for counters in opened:
        await counters.aclose()
