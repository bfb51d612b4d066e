"""An async load generator for streaming endpoints.

    python bench/loadgen.py --url http://127.0.0.1:9001/v1/chat/completions --mode chat -c 16 -n 512
    python bench/loadgen.py --url http://127.0.0.1:8000/v1/responses --mode responses -c 16 -n 512

Sends `-n` streaming POSTs, `-c` at a time, over one pooled aiohttp session,
and measures per request the time to the first text delta (TTFT: a chat
chunk with `content`, or a `response.output_text.delta`) and the total time to
the end of the body. Prints p50/p99 of both, requests/s and events/s.

The body is scanned as bytes, not parsed (`StreamScan`): the load generator shares
the machine's cores with the server it measures, so its own CPU per event is kept
small. Events are counted by their blank-line terminators (LF framing, as both
respgate and bench/fake_upstream.py write; a keep-alive comment would count too).

Importable: `run_load(...)` returns a `LoadResult`; `percentile()`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

Mode = Literal["chat", "responses", "messages"]
BODIES: dict[str, dict[str, Any]] = {
    "chat": {
        "model": "fake-model",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    },
    # stored, as the Responses API's default is (`store` left out)
    "responses": {"model": "fake-model", "stream": True, "input": "hi"},
    "messages": {
        "model": "fake-model",
        "stream": True,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
    },
}


TEXT_MARKERS: dict[str, bytes] = {
    "responses": b'"type":"response.output_text.delta"',
    "chat": b'"content":"',  # a text delta unless the content is empty
    "messages": b'"type":"text_delta"',
}


class StreamScan:
    """Counts events and spots the first text delta in a byte stream, across chunk
    boundaries, without decoding it."""

    def __init__(self, mode: Mode) -> None:
        self.marker = TEXT_MARKERS[mode]
        self.chat = mode == "chat"
        self.events = 0
        self.seen_text = False
        self._tail = b""  # the end of the previous chunk, for matches split across chunks

    def feed(self, chunk: bytes) -> None:
        buf = self._tail + chunk
        self.events += buf.count(b"\n\n") - self._tail.count(b"\n\n")
        if not self.seen_text:
            self.seen_text = self._has_text(buf)
        self._tail = buf[-len(self.marker) :]

    def _has_text(self, buf: bytes) -> bool:
        at = buf.find(self.marker)
        while at >= 0:
            end = at + len(self.marker)
            if not self.chat:
                return True
            if end < len(buf) and buf[end] != 0x22:  # not `"content":""`
                return True
            if end == len(buf):  # the next byte decides: look again with the next chunk
                return False
            at = buf.find(self.marker, end)
        return False


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
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    mode: Mode,
    result: LoadResult,
    headers: dict[str, str],
) -> None:
    scan = StreamScan(mode)
    t0 = time.perf_counter()
    first: float | None = None
    async with session.post(url, data=body, headers=headers) as r:
        if r.status != 200:
            await r.read()
            result.errors += 1
            return
        async for chunk in r.content.iter_any():
            scan.feed(chunk)
            if first is None and scan.seen_text:
                first = time.perf_counter()
    end = time.perf_counter()
    result.total.append(end - t0)
    result.ttft.append((first or end) - t0)
    result.events += scan.events


async def run_load(
    url: str,
    *,
    mode: Mode = "chat",
    concurrency: int = 1,
    requests: int = 100,
    body: dict[str, Any] | None = None,
    warmup: int = 0,
    api_key: str | None = None,
) -> LoadResult:
    payload = orjson.dumps(body or BODIES[mode])
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        scratch = LoadResult()
        await asyncio.gather(
            *(one_request(session, url, payload, mode, scratch, headers) for _ in range(warmup))
        )
        result = LoadResult()
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                await one_request(session, url, payload, mode, result, headers)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - t0
        return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--mode", choices=["chat", "responses", "messages"], default="chat")
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
