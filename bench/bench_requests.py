"""Server CPU per small request (GET /healthz, keep-alive, 8 connections) of `respgate serve`
from one or more source trees, interleaved over rounds: the per-request cost of the HTTP edge.

    python bench/bench_requests.py --src DIR [--src DIR ...] [--rounds 4] [-n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_slow_clients import Gateway

ROOT = Path(__file__).resolve().parents[1]
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


async def connection(port: int, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(n):
        writer.write(REQUEST)
        await reader.readuntil(b"}")
    writer.close()


async def load(port: int, n: int, concurrency: int = 8) -> None:
    await asyncio.gather(*(connection(port, n // concurrency) for _ in range(concurrency)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", action="append", help="a respgate source tree (repeat for A/B)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("-n", "--requests", type=int, default=20000)
    a = p.parse_args()
    for _ in range(a.rounds):
        for src in a.src or [str(ROOT / "src")]:
            gw = Gateway(src, None)
            try:
                asyncio.run(load(gw.port, 2000))  # warm-up
                cpu0, t0 = gw.cpu(), time.monotonic()
                asyncio.run(load(gw.port, a.requests))
                rate = a.requests / (time.monotonic() - t0)
                cpu = (gw.cpu() - cpu0) / a.requests * 1e6
                print(f"{src}: {rate:7.0f} req/s, server CPU {cpu:6.1f} us/request")
            finally:
                gw.stop()


if __name__ == "__main__":
    main()
