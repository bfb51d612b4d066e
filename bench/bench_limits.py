"""What a rate-limit check costs per response: admit + finish (slot back, tokens charged),
in-process and in Redis, one at a time and 50 concurrent. Prints numbers.

python bench/bench_limits.py [--n 2000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time

from respgate.limits import Counters, Limits, Quota
from respgate.limits.memory import MemoryCounters
from respgate.limits.redis import RedisCounters
from respgate.observe import RunInfo
from respgate.store.keys import ApiKey

QUOTA = Quota(requests_per_minute=10**9, tokens_per_minute=10**9, concurrent_streams=10**6)
USAGE = {"input_tokens": 100, "output_tokens": 50}


async def one(limits: Limits, key: ApiKey) -> float:
    start = time.perf_counter()
    grant = await limits.admit(key, RunInfo(key.tenant, "m", "sse"))
    await grant.finish(USAGE)
    return time.perf_counter() - start


async def measure(name: str, counters: Counters, n: int) -> None:
    limits = Limits(QUOTA, counters)
    key = ApiKey("bench", secrets.token_hex(8))
    await one(limits, key)  # warm up (connect, load the scripts)
    serial = [await one(limits, key) for _ in range(n)]
    start = time.perf_counter()
    for _ in range(n // 50):
        await asyncio.gather(*(one(limits, key) for _ in range(50)))
    elapsed = time.perf_counter() - start
    p50 = statistics.median(serial) * 1e6
    p99 = statistics.quantiles(serial, n=100)[98] * 1e6
    print(
        f"{name:8} one at a time: p50 {p50:7.1f} us  p99 {p99:7.1f} us   "
        f"50 concurrent: {(n // 50) * 50 / elapsed:8.0f} responses/s"
    )
    await limits.aclose()


async def main(n: int, redis_url: str | None) -> None:
    await measure("memory", MemoryCounters(), n)
    if redis_url:
        await measure("redis", RedisCounters(redis_url, prefix="respgate-bench:"), n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--redis", default=None, help="a Redis URL to measure too")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.redis))
