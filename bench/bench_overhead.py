"""Added latency of respgate over a Chat Completions upstream (issue #3 item 7).

Starts the fake upstream (bench/fake_upstream.py) and `respgate serve` routing
`fake-model` to it, each in its own process, then runs bench/loadgen.py at each
concurrency straight to the upstream and through respgate. Prints TTFT and total
time (p50/p99), the added overhead, events/s, respgate's CPU per stream and its
peak RSS. Asserts nothing.

With `--ops`, three gateways run side by side in the same run, measured in turn at
each concurrency: `ops-off` (`[server] metrics = false`, `--log-level warning`: no
per-response lines), `metrics` (metrics on, still `--log-level warning`) and `ops-on`
(metrics on, `--log-format json --log-level info`: a JSON line per response and
uvicorn's per access, written to a file). The cost of metrics and of logging is the
difference between the rows; /metrics is scraped at the end.

The default gateway runs as a user gets it (issue 11 part 1): SQLite store on, one API key
configured (the load sends it), info logging in text to a file; `/v1/responses` requests
are stored, as the API's default is (`--unstored` sends `"store": false`: no store writes
but the usage record). `up CPU` is the fake
upstream's CPU per stream while it served the gateway's streams, in the same interval, and
`ratio` the gateway's CPU over it: the machine's drift cancels out of the ratio. `loop CPU`
is the part of the gateway's CPU spent on its main thread (the event loop); the rest is
its other threads' (the SQLite lanes).

    python bench/bench_overhead.py [-c 1 16 64 256] [-n 400] [--tokens 50] [--delay-ms 0] [--src DIR]
                                   [--against DIR] [--ops] [--rounds 1] [--surface responses|chat|messages]
                                   [--unstored]

`--against DIR` adds a gateway `against` serving another source tree (say `git archive`
of the commit before a change) with the same config, measured in turn with `respgate` in
the same run: an A/B whose rows share the machine's state. `--surface chat` measures
through `/v1/chat/completions` instead of `/v1/responses`, `--surface messages` through
`/v1/messages`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import BODIES, run_load

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BENCH_KEY = "sk-bench-" + "0" * 24
KEYS_TOML = f'[[keys]]\ntenant = "bench"\nkey = "{BENCH_KEY}"\nadmin = true\n'


def fake_route(up_port: int) -> str:
    """Config: provider `fake` (bench/fake_upstream.py on `up_port`) serving `fake-model`."""
    return (
        f'[providers.fake]\nkind = "chat_completions"\nbase_url = "http://127.0.0.1:{up_port}/v1"\n'
        '[[routes]]\nmodel = "fake-model"\nprovider = "fake"\n'
    )


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
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


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of a process so far."""
    return sum(process.cpu_times()[:2])


def loop_cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of the process's main thread (its event loop) so far; the
    rest of `cpu_seconds` is its other threads' (the SQLite lanes)."""
    return next(
        (t.user_time + t.system_time for t in process.threads() if t.id == process.pid), 0.0
    )


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each field's median over the rounds."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


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
    p.add_argument("--against", help="a second source tree served side by side (A/B)")
    p.add_argument("--ops", action="store_true", help="compare metrics+logs off and on")
    p.add_argument(
        "--rounds", type=int, default=1, help="measure each level this often (gateways in "
        "rotating order) and print the medians",
    )  # fmt: skip
    p.add_argument("--surface", choices=["responses", "chat", "messages"], default="responses",
                   help="the inbound surface measured through respgate")  # fmt: skip
    p.add_argument(
        "--unstored",
        action="store_true",
        help='responses requests with "store": false (default: stored, as the API)',
    )
    a = p.parse_args()
    body = (
        {**BODIES["responses"], "store": False} if a.unstored and a.surface == "responses" else None
    )
    path = {"responses": "/v1/responses", "chat": "/v1/chat/completions",
            "messages": "/v1/messages"}[a.surface]  # fmt: skip

    env = {**os.environ, "PYTHONPATH": a.src, "RESPGATE_WORKERS": "1"}  # one process measured
    up_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench/fake_upstream.py"), "--port", str(up_port),
         "--tokens", str(a.tokens), "--delay-ms", str(a.delay_ms)],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    routes = fake_route(up_port)
    key: str | None = BENCH_KEY
    variants = {"respgate": (KEYS_TOML, ["--log-level", "info"])}
    if a.against:
        variants["against"] = variants["respgate"]
    if a.ops:
        variants = {
            "ops-off": ("[server]\nmetrics = false\n", ["--log-level", "warning"]),
            "metrics": ("", ["--log-level", "warning"]),
            "ops-on": ("", ["--log-level", "info", "--log-format", "json"]),
        }
        key = None
    tmp = tempfile.TemporaryDirectory()
    gateways: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    for name, (extra, args) in variants.items():
        cfg = Path(tmp.name, f"{name}.toml")
        data = Path(tmp.name, f"{name}-data")
        cfg.write_text(f'{extra}[store]\ndata_dir = "{data}"\n{routes}')
        port = free_port()
        log = open(Path(tmp.name, f"{name}.log"), "wb")  # noqa: SIM115 (closed with the dir)
        gateways[name] = (
            subprocess.Popen(
                [sys.executable, "-m", "respgate", "serve", "--port", str(port),
                 "--config", str(cfg), *args],
                env={**env, "RESPGATE_NO_OLLAMA_PROBE": "1",
                     **({"PYTHONPATH": a.against} if name == "against" else {})},
                stdout=log, stderr=log,
            ),
            port,
        )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/v1/models")
        for name, (_, port) in gateways.items():
            try:
                wait_ready(f"http://127.0.0.1:{port}/healthz")
            except httpx.TransportError:
                sys.exit(f"{name} did not start:\n" + Path(tmp.name, f"{name}.log").read_text())
        for name, (proc, _) in gateways.items():
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            print(f"{name} idle RSS: {rss:.0f} MiB")
        head = (
            f"{'conc':>5} | {'gateway':>8} | {'direct ttft p50/p99':>20} | "
            f"{'respgate ttft p50/p99':>22} | {'added ttft p50/p99':>19} | "
            f"{'added total p50/p99':>20} | {'streams/s':>9} | {'events/s':>9} | {'CPU/stream':>10} | "
            f"{'loop CPU':>8} | {'up CPU':>8} | {'ratio':>5}"
        )
        print(head)
        names = list(gateways)
        up = psutil.Process(upstream.pid)
        for c in a.concurrency:
            n = max(a.requests, 4 * c)
            warmup = min(c, 16)
            direct_runs: list[dict[str, float]] = []
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for r in range(a.rounds):
                direct_runs.append(asyncio.run(
                    run_load(f"http://127.0.0.1:{up_port}/v1/chat/completions", mode="chat",
                             concurrency=c, requests=n, warmup=warmup)
                ).summary())  # fmt: skip
                for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate order
                    proc, port = gateways[name]
                    gw = psutil.Process(proc.pid)
                    cpu0, loop0, up0 = cpu_seconds(gw), loop_cpu_seconds(gw), cpu_seconds(up)
                    through = asyncio.run(
                        run_load(f"http://127.0.0.1:{port}{path}", mode=a.surface,
                                 concurrency=c, requests=n, warmup=warmup, api_key=key,
                                 body=body)
                    ).summary()  # fmt: skip
                    through["cpu_ms"] = (cpu_seconds(gw) - cpu0) / (n + warmup) * 1000
                    through["loop_cpu_ms"] = (loop_cpu_seconds(gw) - loop0) / (n + warmup) * 1000
                    through["up_cpu_ms"] = (cpu_seconds(up) - up0) / (n + warmup) * 1000
                    through["ratio"] = through["cpu_ms"] / through["up_cpu_ms"]
                    runs[name].append(through)
            direct = median_of(direct_runs)
            for name in names:
                through = median_of(runs[name])
                added = {
                    k: through[k] - direct[k]
                    for k in ("ttft_p50_ms", "ttft_p99_ms", "total_p50_ms", "total_p99_ms")
                }
                print(
                    f"{c:>5} | {name:>8} | {direct['ttft_p50_ms']:>9.2f} / {direct['ttft_p99_ms']:>8.2f} | "
                    f"{through['ttft_p50_ms']:>10.2f} / {through['ttft_p99_ms']:>9.2f} | "
                    f"{added['ttft_p50_ms']:>8.2f} / {added['ttft_p99_ms']:>8.2f} | "
                    f"{added['total_p50_ms']:>9.2f} / {added['total_p99_ms']:>8.2f} | "
                    f"{through['req_per_s']:>9.0f} | {through['events_per_s']:>9.0f} | "
                    f"{through['cpu_ms']:>7.2f} ms | {through['loop_cpu_ms']:>5.2f} ms | "
                    f"{through['up_cpu_ms']:>5.2f} ms | "
                    f"{through['ratio']:>5.2f}"
                    + (f"  errors={through['errors']:.0f}" if through["errors"] else "")
                )
        for name, (proc, port) in gateways.items():
            print(f"{name} peak RSS: {peak_rss_mib(proc.pid):.0f} MiB")
            auth = {"authorization": f"Bearer {key}"} if key else {}
            r = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=auth, timeout=5)
            if r.status_code == 200:
                count = next(
                    (line.split()[-1] for line in r.text.splitlines()
                     if line.startswith("respgate_time_to_first_byte_seconds_count")), "-"
                )  # fmt: skip
                print(f"{name} /metrics: respgate_time_to_first_byte_seconds_count {count}")
                collections = [
                    line.split()[-1] for line in r.text.splitlines()
                    if line.startswith("python_gc_collections_total{")
                ]  # fmt: skip
                if collections:
                    print(f"{name} /metrics: garbage collections by generation (0, 1, 2) "
                          f"{', '.join(collections)}")  # fmt: skip
            lines = Path(tmp.name, f"{name}.log").read_bytes().count(b"respgate.response")
            print(f"{name} per-response log lines: {lines}")
    finally:
        for proc in [g[0] for g in gateways.values()] + [upstream]:
            proc.terminate()
            proc.wait(10)
        tmp.cleanup()


if __name__ == "__main__":
    main()
