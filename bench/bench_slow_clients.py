"""Slow and oversized clients against `respgate serve` (issue 8 part 2): are normal clients served?

Scenario `slow`: N slowloris clients (default 1,000) each trickle a request's headers at one byte
per second and reconnect whenever the server closes them, for --duration seconds; meanwhile a
normal client sends a request every 0.25 s on a fresh connection (GET /healthz and POST
/v1/responses with `echo`, alternately, 5 s timeout). Prints how many normal requests were
served and their latency, how many slow connections the server held at the end, and the
server's connection-limit log lines.

Scenario `big`: one client uploads a single header of --big-mb MB as fast as it can while
the normal client polls /healthz every 50 ms; prints what the server accepted of the upload,
its answer, its CPU seconds and RSS growth, and /healthz latency meanwhile.

--nofile N runs the server with RLIMIT_NOFILE N (soft and hard), like `ulimit -n N`; --src
serves another source tree (A/B: `git archive main src | tar -x -C <dir>`).

    python bench/bench_slow_clients.py [--scenario slow|big|all] [-n 1000] [--duration 30]
        [--reconnect-delay 1] [--nofile N] [--big-mb 100] [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
ECHO = {"model": "echo", "input": "hello there", "store": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_own_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Gateway:
    def __init__(self, src: str, nofile: int | None, config: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fd, self.cfg = tempfile.mkstemp(suffix=".toml")
        os.write(fd, b"[store]\nenabled = false\n" + config.encode())
        os.close(fd)
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "respgate", "serve", "--port", str(self.port),
             "--config", self.cfg, "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": src, "RESPGATE_NO_OLLAMA_PROBE": "1",
                 "RESPGATE_WORKERS": "1"},
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        return sum(self.ps.cpu_times()[:2])

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def connections(self) -> int:
        return sum(1 for c in self.ps.net_connections("tcp") if c.status == "ESTABLISHED")

    def log_lines(self, needle: str) -> list[str]:
        self.log.seek(0)
        return [line.rstrip() for line in self.log if needle in line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.cfg)
        self.log.close()


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms"


async def normal_client(
    url: str, stop: asyncio.Event, period: float
) -> tuple[int, int, list[float]]:
    """A request per `period` on a fresh connection each; (served, sent, latencies)."""
    served = sent = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=5, limits=limits) as client:
        while not stop.is_set():
            t0 = time.monotonic()
            sent += 1
            try:
                if sent % 2:
                    r = await client.get("/healthz")
                else:
                    r = await client.post("/v1/responses", json=ECHO)
                if r.status_code == 200:
                    served += 1
                    latencies.append(time.monotonic() - t0)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(max(0.0, period - (time.monotonic() - t0)))
    return served, sent, latencies


async def slowloris(port: int, stop: asyncio.Event, stats: dict[str, int], delay: float) -> None:
    """Hold one connection trickling header bytes at 1 byte/s; reconnect `delay` s after
    the server closed it."""
    header = b"X-Slow: " + b"s" * 64 + b"\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_failed"] += 1
            await asyncio.sleep(1)
            continue
        stats["connected"] += 1
        stats["open"] += 1
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            i = 0
            while not stop.is_set():
                writer.write(header[i % len(header) : i % len(header) + 1])
                await writer.drain()
                i += 1
                try:
                    answer = await asyncio.wait_for(reader.read(64), 1.0)
                except TimeoutError:
                    continue
                status = answer[9:12].decode() if answer.startswith(b"HTTP/") else "closed"
                stats[f"answered {status}"] = stats.get(f"answered {status}", 0) + 1
                break
        except OSError:
            stats["reset"] += 1
        finally:
            stats["open"] -= 1
            writer.close()
        await asyncio.sleep(delay)


async def scenario_slow(gw: Gateway, n: int, duration: float, delay: float) -> None:
    stop = asyncio.Event()
    stats = {"connected": 0, "open": 0, "connect_failed": 0, "reset": 0}
    attackers = []
    for _ in range(n):  # ramp up over ~1 s
        attackers.append(asyncio.create_task(slowloris(gw.port, stop, stats, delay)))
        await asyncio.sleep(1 / n)
    await asyncio.sleep(2)
    normal = asyncio.create_task(normal_client(gw.url, stop, 0.25))
    await asyncio.sleep(duration)
    held = gw.connections()
    open_now = stats["open"]
    stop.set()
    served, sent, latencies = await normal
    await asyncio.gather(*attackers, return_exceptions=True)
    print(
        f"slow clients: {n} trickling 1 byte/s for {duration:g} s, reconnecting {delay:g} s after a close"
    )
    print(f"  slow connections open at the end: {open_now} (server ESTABLISHED sockets: {held})")
    print(f"  slow client outcomes: { {k: v for k, v in sorted(stats.items()) if k != 'open'} }")
    print(f"  normal client: {served}/{sent} served; latency {percentiles(latencies)}")
    print(f"  server RSS {gw.rss_mib():.0f} MiB")


def scenario_big(gw: Gateway, megabytes: int) -> None:
    stop = threading.Event()
    result: dict[str, object] = {}

    def upload() -> None:
        chunk = b"a" * 65536
        sent = 0
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
                while sent < megabytes * 2**20:
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b"\r\n\r\n")
            except OSError as exc:
                result["send_error"] = type(exc).__name__
            try:
                result["answer"] = sock.recv(64).split(b"\r\n")[0].decode() or "closed"
            except OSError as exc:
                result["answer"] = type(exc).__name__
        result["sent_mb"] = sent / 2**20
        result["seconds"] = time.monotonic() - t0
        stop.set()

    cpu0, rss0 = gw.cpu(), gw.peak_rss_mib()
    uploader = threading.Thread(target=upload)
    uploader.start()
    latencies: list[float] = []
    failures = 0
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        while not stop.is_set() or not latencies:  # at least one sample
            t0 = time.monotonic()
            try:
                client.get("/healthz").raise_for_status()
                latencies.append(time.monotonic() - t0)
            except httpx.HTTPError:
                failures += 1
            time.sleep(0.05)
    uploader.join()
    print(f"one {megabytes} MB header:")
    print(
        f"  uploaded {result['sent_mb']:.1f} MB in {result['seconds']:.2f} s; answer: "
        f"{result['answer']!r}"
        + (f" (send: {result['send_error']})" if "send_error" in result else "")
    )
    print(
        f"  server CPU {gw.cpu() - cpu0:.2f} s, peak RSS {rss0:.0f} -> {gw.peak_rss_mib():.0f} MiB"
    )
    print(f"  /healthz meanwhile: {len(latencies)} ok, {failures} failed; {percentiles(latencies)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=["slow", "big", "all"], default="all")
    p.add_argument("-n", "--slow-clients", type=int, default=1000)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument(
        "--reconnect-delay", type=float, default=1.0, help="s before a slow client reconnects"
    )
    p.add_argument("--nofile", type=int, default=None, help="server RLIMIT_NOFILE (soft=hard)")
    p.add_argument("--big-mb", type=int, default=100)
    p.add_argument("--src", default=str(ROOT / "src"), help="the respgate source tree to serve")
    a = p.parse_args()
    raise_own_limit()
    gw = Gateway(a.src, a.nofile)
    try:
        print(f"server: {a.src}, RLIMIT_NOFILE {a.nofile or 'inherited'}")
        if a.scenario in ("big", "all"):
            scenario_big(gw, a.big_mb)
        if a.scenario in ("slow", "all"):
            asyncio.run(scenario_slow(gw, a.slow_clients, a.duration, a.reconnect_delay))
        lines = gw.log_lines("connection limit") + gw.log_lines("Too many open files")
        print(f"server log lines about the limit ({len(lines)}):")
        for line in lines[:5]:
            print(f"  {line}")
    finally:
        gw.stop()


if __name__ == "__main__":
    main()
