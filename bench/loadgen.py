"""An async load generator for streaming endpoints.

    python bench/loadgen.py --url http://127.0.0.1:9001/v1/chat/completions --mode chat -c 16 -n 512
    python bench/loadgen.py --url http://127.0.0.1:8000/v1/responses --mode responses -c 16 -n 512

Sends `-n` streaming POSTs, `-c` at a time, over one pooled aiohttp session,
and measures per request the time to the first text delta (TTFT: a chat
chunk with `content`, or a `response.output_text.delta`) and the total time to
the end of the body. Prints p50/p99 of both, requests/s and events/s.

Importable: `run_load(...)` returns a `LoadResult`; `percentile()`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from respgate.sse import SSEDecoder

Mode = Literal["chat", "responses"]
BODIES: dict[str, dict[str, Any]] = {
    "chat": {
        "model": "fake-model",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "responses": {"model": "fake-model", "stream": True, "input": "hi", "store": False},
}


def is_text_delta(mode: Mode, data: str) -> bool:
    if mode == "responses":
        return '"response.output_text.delta"' in data
    return '"content":"' in data and '"content":""' not in data


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    ttft: list[float] = field(default_factory=list)  # seconds
    total: list[float] = field(default_factory=list)
    events: int = 0
    errors: int = 0
    wall: float = 0.0

    def summary(self) -> dict[str, float]:
        ms = 1000.0
        return {
            "requests": len(self.total),
            "errors": self.errors,
            "ttft_p50_ms": percentile(self.ttft, 50) * ms,
            "ttft_p99_ms": percentile(self.ttft, 99) * ms,
            "total_p50_ms": percentile(self.total, 50) * ms,
            "total_p99_ms": percentile(self.total, 99) * ms,
            "req_per_s": len(self.total) / self.wall if self.wall else 0.0,
            "events_per_s": self.events / self.wall if self.wall else 0.0,
        }


async def one_request(
    session: aiohttp.ClientSession, url: str, body: bytes, mode: Mode, result: LoadResult
) -> None:
    decoder = SSEDecoder()
    t0 = time.perf_counter()
    first: float | None = None
    events = 0
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        if r.status != 200:
            await r.read()
            result.errors += 1
            return
        async for chunk in r.content.iter_any():
            for event in decoder.feed(chunk):
                data = event.data
                events += 1
                if first is None and is_text_delta(mode, data):
                    first = time.perf_counter()
    end = time.perf_counter()
    result.total.append(end - t0)
    result.ttft.append((first or end) - t0)
    result.events += events


async def run_load(
    url: str,
    *,
    mode: Mode = "chat",
    concurrency: int = 1,
    requests: int = 100,
    body: dict[str, Any] | None = None,
    warmup: int = 0,
) -> LoadResult:
    payload = orjson.dumps(body or BODIES[mode])
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        scratch = LoadResult()
        await asyncio.gather(
            *(one_request(session, url, payload, mode, scratch) for _ in range(warmup))
        )
        result = LoadResult()
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                await one_request(session, url, payload, mode, result)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - t0
        return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--mode", choices=["chat", "responses"], default="chat")
    p.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1])
    p.add_argument("-n", "--requests", type=int, default=200)
    p.add_argument("--model", default=None, help="override the model name in the body")
    a = p.parse_args(argv)
    body = dict(BODIES[a.mode])
    if a.model:
        body["model"] = a.model
    print(
        f"{'conc':>5} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>10} {'total p99':>10} {'req/s':>8} {'events/s':>9} {'err':>4}"
    )
    for c in a.concurrency:
        s = asyncio.run(
            run_load(
                a.url, mode=a.mode, concurrency=c, requests=a.requests, body=body, warmup=min(c, 16)
            )
        ).summary()
        print(
            f"{c:>5} {s['ttft_p50_ms']:>9.2f} {s['ttft_p99_ms']:>9.2f} {s['total_p50_ms']:>10.2f} "
            f"{s['total_p99_ms']:>10.2f} {s['req_per_s']:>8.0f} {s['events_per_s']:>9.0f} {s['errors']:>4}"
        )


if __name__ == "__main__":
    main()
