"""Which HTTP client should respgate use upstream? httpx, aiohttp and respgate's own
(`providers/wire.py`: asyncio Protocol + httptools), measured.

    python bench/bench_http_client.py --tokens 200 --streams 256 --concurrency 1 16 64

Starts `bench/fake_upstream.py` in a subprocess (so its CPU is not counted),
then for each client and concurrency streams `--streams` completions through
one shared, pooled client, splitting each body into SSE events with the
providers' decoder (what the gateway really does per chunk). Prints events/s
(wall clock; the fake upstream shares the machine, so read it as relative) and
the client process's CPU per stream and per event. Never asserts anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from respgate.providers.wire import Timeouts, UpstreamClient
from respgate.sse import SSEDecoder

BODY = orjson.dumps(
    {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
)
HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}

StreamOnce = Callable[[], Awaitable[int]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_upstream(port: int, tokens: int) -> subprocess.Popen:
    script = Path(__file__).with_name("fake_upstream.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--tokens", str(tokens)]
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fake upstream did not start")


def count_events(decoder: SSEDecoder, chunk: bytes) -> int:
    return len(decoder.feed(chunk))


async def with_httpx(url: str, run: Callable[[StreamOnce], Awaitable[None]]) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0)) as client:

        async def once() -> int:
            decoder, n = SSEDecoder(), 0
            async with client.stream("POST", url, content=BODY, headers=HEADERS) as r:
                async for chunk in r.aiter_raw():
                    n += count_events(decoder, chunk)
            return n

        await run(once)


async def with_aiohttp(url: str, run: Callable[[StreamOnce], Awaitable[None]]) -> None:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def once() -> int:
            decoder, n = SSEDecoder(), 0
            async with session.post(url, data=BODY, headers=HEADERS) as r:
                async for chunk in r.content.iter_any():
                    n += count_events(decoder, chunk)
            return n

        await run(once)


async def with_wire(url: str, run: Callable[[StreamOnce], Awaitable[None]]) -> None:
    client, timeouts = UpstreamClient(), Timeouts(connect=30, read=30)
    try:

        async def once() -> int:
            decoder, n = SSEDecoder(), 0
            r = await client.post(url, BODY, HEADERS, timeouts)
            while chunk := await r.read():
                n += count_events(decoder, chunk)
            client.release_later(r)
            return n

        await run(once)
    finally:
        await client.aclose()


CLIENTS = {"httpx": with_httpx, "aiohttp": with_aiohttp, "wire": with_wire}


async def measure(client: str, url: str, streams: int, concurrency: int) -> dict[str, float]:
    result: dict[str, float] = {}

    async def run(once: StreamOnce) -> None:
        await asyncio.gather(*(once() for _ in range(min(concurrency, 8))))  # warm the pool
        sem = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with sem:
                return await once()

        cpu0, t0 = time.process_time(), time.perf_counter()
        events = sum(await asyncio.gather(*(one() for _ in range(streams))))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        result.update(
            events=events,
            events_per_s=events / wall,
            cpu_ms_per_stream=cpu * 1000 / streams,
            cpu_us_per_event=cpu * 1e6 / events,
        )

    await CLIENTS[client](url, run)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--streams", type=int, default=256)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--rounds", type=int, default=3, help="best of N per cell")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    a = p.parse_args(argv)
    if a.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    port = free_port()
    proc = start_upstream(port, a.tokens)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        print(
            f"# {a.streams} streams x {a.tokens + 4} events, loop={a.loop}, cpus={os.cpu_count()}, best of {a.rounds}"
        )
        print(
            f"{'client':8} {'conc':>5} {'events/s':>10} {'cpu ms/stream':>14} {'cpu us/event':>13}"
        )
        for c in a.concurrency:
            for client in CLIENTS:
                runs = [asyncio.run(measure(client, url, a.streams, c)) for _ in range(a.rounds)]
                best = min(runs, key=lambda r: r["cpu_ms_per_stream"])
                print(
                    f"{client:8} {c:>5} {max(r['events_per_s'] for r in runs):>10.0f} "
                    f"{best['cpu_ms_per_stream']:>14.2f} {best['cpu_us_per_event']:>13.2f}"
                )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
