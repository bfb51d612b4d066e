"""Events/s through a real respgate server with the `echo` model.

Starts `respgate serve` in a subprocess on a free port, then streams with an
httpx client: one long stream, then N concurrent streams. Prints numbers;
asserts nothing. Usage: python bench/bench_echo.py [--tokens 5000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def one_stream(client: httpx.AsyncClient, tokens: int, store: bool = True) -> int:
    body = {
        "model": "echo",
        "input": "x",
        "stream": True,
        "store": store,
        "metadata": {"echo_scenario": "long", "echo_tokens": str(tokens)},
    }
    frames = 0
    async with client.stream("POST", "/v1/responses", json=body) as r:
        r.raise_for_status()
        async for chunk in r.aiter_bytes():
            frames += chunk.count(b"\n\n")
    return frames


async def measure(url: str, tokens: int, concurrency: int, store: bool) -> tuple[int, float]:
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await one_stream(client, 10)  # warm-up
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(one_stream(client, tokens, store) for _ in range(concurrency))
        )
        return sum(counts), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=5000, help="tokens in the single stream")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--tokens-each", type=int, default=200, help="tokens per concurrent stream")
    parser.add_argument(
        "--no-store", action="store_true", help="send store: false (nothing persisted)"
    )
    args = parser.parse_args()
    store = not args.no_store
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="respgate-bench-")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RESPGATE_DATA_DIR": data_dir}
    env["RESPGATE_WORKERS"] = "1"  # one process measured
    cmd = [sys.executable, "-m", "respgate", "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        events, seconds = asyncio.run(measure(url, args.tokens, 1, store))
        print(
            f"1 stream of {args.tokens} tokens: {events} events in {seconds:.3f} s = {events / seconds:,.0f} events/s"
        )
        events, seconds = asyncio.run(measure(url, args.tokens_each, args.concurrency, store))
        print(
            f"{args.concurrency} concurrent streams of {args.tokens_each} tokens: {events} events in {seconds:.3f} s"
            f" = {events / seconds:,.0f} events/s, {args.concurrency / seconds:,.0f} streams/s"
        )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
