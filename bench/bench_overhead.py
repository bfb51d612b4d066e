"""Added latency of respgate over a Chat Completions upstream (issue #3 item 7).

Starts the fake upstream (bench/fake_upstream.py) and `respgate serve` routing
`fake-model` to it, each in its own process, then runs bench/loadgen.py at each
concurrency straight to the upstream and through respgate. Prints TTFT and total
time (p50/p99), the added overhead, events/s, respgate's CPU per stream and its
peak RSS. Asserts nothing.

    python bench/bench_overhead.py [-c 1 16 64 256] [-n 400] [--tokens 50] [--delay-ms 0] [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run_load

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument(
        "-n",
        "--requests",
        type=int,
        default=400,
        help="requests per concurrency level (at least 4x c)",
    )
    p.add_argument("--tokens", type=int, default=50)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument(
        "--src", default=str(ROOT / "src"), help="the respgate source tree to serve (for A/B)"
    )
    a = p.parse_args()

    env = {**os.environ, "PYTHONPATH": a.src}
    up_port, gw_port = free_port(), free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/fake_upstream.py"), "--port", str(up_port),
         "--tokens", str(a.tokens), "--delay-ms", str(a.delay_ms)],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write(
            f'[providers.fake]\nkind = "chat_completions"\nbase_url = "http://127.0.0.1:{up_port}/v1"\n'
            '[[routes]]\nmodel = "fake-model"\nprovider = "fake"\n'
        )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "respgate", "serve", "--port", str(gw_port), "--config", cfg.name,
         "--log-level", "warning"],
        env={**env, "RESPGATE_NO_OLLAMA_PROBE": "1"},
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/v1/models")
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz")
        gw = psutil.Process(gateway.pid)
        print(f"respgate idle RSS: {gw.memory_info().rss / 2**20:.0f} MiB")
        head = (
            f"{'conc':>5} | {'direct ttft p50/p99':>20} | {'respgate ttft p50/p99':>22} | "
            f"{'added ttft p50/p99':>19} | {'added total p50/p99':>20} | {'streams/s':>9} | "
            f"{'events/s':>9} | {'CPU/stream':>10}"
        )
        print(head)
        for c in a.concurrency:
            n = max(a.requests, 4 * c)
            direct = asyncio.run(
                run_load(f"http://127.0.0.1:{up_port}/v1/chat/completions", mode="chat",
                         concurrency=c, requests=n, warmup=min(c, 16))
            ).summary()  # fmt: skip
            cpu0 = sum(gw.cpu_times()[:2])
            through = asyncio.run(
                run_load(f"http://127.0.0.1:{gw_port}/v1/responses", mode="responses",
                         concurrency=c, requests=n, warmup=0)
            ).summary()  # fmt: skip
            cpu = (sum(gw.cpu_times()[:2]) - cpu0) / n * 1000
            added = {
                k: through[k] - direct[k]
                for k in ("ttft_p50_ms", "ttft_p99_ms", "total_p50_ms", "total_p99_ms")
            }
            print(
                f"{c:>5} | {direct['ttft_p50_ms']:>9.2f} / {direct['ttft_p99_ms']:>8.2f} | "
                f"{through['ttft_p50_ms']:>10.2f} / {through['ttft_p99_ms']:>9.2f} | "
                f"{added['ttft_p50_ms']:>8.2f} / {added['ttft_p99_ms']:>8.2f} | "
                f"{added['total_p50_ms']:>9.2f} / {added['total_p99_ms']:>8.2f} | "
                f"{through['req_per_s']:>9.0f} | {through['events_per_s']:>9.0f} | {cpu:>7.2f} ms"
                + (f"  errors={through['errors']:.0f}" if through["errors"] else "")
            )
        print(f"respgate peak RSS: {peak_rss_mib(gateway.pid):.0f} MiB")
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)
        os.unlink(cfg.name)


if __name__ == "__main__":
    main()
