"""Streams/s of `respgate serve --workers N` for several N, in one run (issue #11 part 4).

Starts the fake Chat Completions upstream (bench/fake_upstream.py) and one gateway per
worker count, each with the defaults a user gets (SQLite store on, metrics on) and
`--log-level warning`, routing `fake-model` to the upstream; then, in rotating order for
`--rounds` rounds, sends `-n` streaming requests `-c` at a time (bench/loadgen.py, stored
responses) to each. Prints the median streams/s, TTFT p50/p99, the gateway's CPU per stream
(supervisor and workers together) and the upstream's CPU per stream. The total time
includes the final save, awaited before the terminal event: SQLite lock waits between
workers show there, not in TTFT. Asserts nothing.

On a machine with fewer free cores than workers + upstream + load generator, the numbers
say how the gateway shares the cores, not how it scales: read them with `nproc` and the
machine's load in mind.

    python bench/bench_workers.py [-w 1 2] [-c 64] [-n 1000] [--rounds 2] [--tokens 50] [--no-store]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import fake_route, free_port, wait_ready
from loadgen import run_load

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "fake-model", "stream": True, "input": "hi"}  # stored (the default)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU of `proc` and its live children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(p.cpu_times()[:2])
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-w", "--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("-n", "--requests", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tokens", type=int, default=50)
    p.add_argument("--no-store", action="store_true", help="[store] enabled = false")
    a = p.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RESPGATE_NO_OLLAMA_PROBE": "1"}
    up_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/fake_upstream.py"), "--port", str(up_port),
         "--tokens", str(a.tokens)],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    tmp = tempfile.TemporaryDirectory()
    gateways: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
    for n in a.workers:
        cfg = Path(tmp.name, f"w{n}.toml")
        cfg.write_text(
            f"[store]\nenabled = {str(not a.no_store).lower()}\n"
            f'data_dir = "{Path(tmp.name, f"w{n}-data")}"\n{fake_route(up_port)}'
        )
        port = free_port()
        gateways[n] = (
            subprocess.Popen(
                [sys.executable, "-m", "respgate", "serve", "--port", str(port), "--config",
                 str(cfg), "--workers", str(n), "--log-level", "warning"],
                env=env, stderr=subprocess.DEVNULL,
            ),
            port,
        )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/v1/models")
        for _, port in gateways.values():
            wait_ready(f"http://127.0.0.1:{port}/healthz")
        up = psutil.Process(upstream.pid)
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in gateways}
        order = list(gateways)
        for r in range(a.rounds):
            for n in order[r % len(order) :] + order[: r % len(order)]:
                proc, port = gateways[n]
                gw = psutil.Process(proc.pid)
                gw0, up0 = cpu_seconds(gw), cpu_seconds(up)
                warmup = min(a.concurrency, 32)
                result = asyncio.run(
                    run_load(f"http://127.0.0.1:{port}/v1/responses", mode="responses",
                             concurrency=a.concurrency, requests=a.requests, body=BODY,
                             warmup=warmup)
                ).summary()  # fmt: skip
                done = a.requests + warmup
                result["gw_cpu_ms"] = (cpu_seconds(gw) - gw0) / done * 1000
                result["up_cpu_ms"] = (cpu_seconds(up) - up0) / done * 1000
                runs[n].append(result)
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, "
              f"c={a.concurrency}, n={a.requests}, rounds={a.rounds} (medians), "
              f"store {'off' if a.no_store else 'on'}")  # fmt: skip
        print(f"{'workers':>7} | {'streams/s':>9} | {'ttft p50/p99 ms':>17} | "
              f"{'total p50/p99 ms':>17} | {'gateway CPU/stream':>18} | "
              f"{'upstream CPU/stream':>19}")  # fmt: skip
        for n, results in runs.items():
            m = {k: statistics.median(x[k] for x in results) for k in results[0]}
            print(
                f"{n:>7} | {m['req_per_s']:>9.0f} | {m['ttft_p50_ms']:>7.2f} / "
                f"{m['ttft_p99_ms']:>7.2f} | {m['total_p50_ms']:>7.2f} / "
                f"{m['total_p99_ms']:>7.2f} | {m['gw_cpu_ms']:>15.2f} ms | "
                f"{m['up_cpu_ms']:>16.2f} ms"
                + (f"  errors={m['errors']:.0f}" if m["errors"] else "")
            )
    finally:
        for proc in [g[0] for g in gateways.values()] + [upstream]:
            proc.terminate()
            proc.wait(15)
        tmp.cleanup()


if __name__ == "__main__":
    main()
