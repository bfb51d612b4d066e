"""Ten thousand open streams through one `respgate serve` (issue 11 part 5).

Three processes: a fake Chat Completions upstream (a raw asyncio server pacing every stream at
one token per --pace seconds), `respgate serve` routed to it (a config file: SQLite store on, as
a user gets it, or `[store] enabled = false` with --no-store) and a load generator (raw asyncio
sockets) that opens -n streams of POST /v1/responses, at most --connecting at a time still
waiting for response headers, and checks every stream: sequence numbers contiguous from 0,
every `response.output_text.delta` present in order (`tok0 `, `tok1 `, ...), exactly one
terminal event, it is `response.completed`, and `data: [DONE]` ends the body.

Prints streams completed/failed, respgate's RSS before the streams and at the peak of open
streams (psutil, sampled every 0.25 s), RSS delta / streams, respgate CPU seconds per token
event, and the latency of GET /healthz polled every 0.5 s during the run (a proxy for the
server's event-loop lag). Each process raises its own open-file limit (soft to hard; the
respgate config sets `max_connections` so it raises the hard limit where the OS allows and
logs when it cannot).

    python bench/bench_open_streams.py                     # 10,000 x 60 tokens, 1 token/s
    python bench/bench_open_streams.py -n 500 --tokens 10  # a small run, ~12 s
    python bench/bench_open_streams.py --no-store
    python bench/bench_open_streams.py --src <before>/src      # another tree (A/B)
    RESPGATE_BENCH_TRACEMALLOC=1 ...                       # respgate prints a tracemalloc diff
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_upstream import chat_chunks

ROOT = Path(__file__).resolve().parents[1]

# respgate under tracemalloc: SIGUSR1 takes the baseline snapshot, SIGUSR2 prints the top
# growth by line since then (25 frames deep traces would cost too much at 10,000 streams).
TRACED = """
import runpy, signal, sys, tracemalloc
tracemalloc.start(1)
snaps = []
def diff(*_):
    snaps.append(tracemalloc.take_snapshot())
    if len(snaps) == 2:
        stats = snaps[1].compare_to(snaps[0], "filename")
        print("tracemalloc total", sum(s.size_diff for s in stats) // 1024, "KiB", flush=True)
        for stat in stats[:12]:
            print("tracemalloc", stat, flush=True)
        for stat in snaps[1].compare_to(snaps[0], "lineno")[:30]:
            print("tracemalloc", stat, flush=True)
signal.signal(signal.SIGUSR1, diff)
signal.signal(signal.SIGUSR2, diff)
sys.argv = ["respgate", *sys.argv[1:]]
runpy.run_module("respgate", run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_own_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the upstream ---------------------------------------------------------------------------


CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def chunked(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection: reads a request (headers + content-length body), answers a
    chunked SSE stream whose first frame goes at once and each next one `pace` s later."""

    def __init__(self, frames: list[bytes], pace: float) -> None:
        self.frames = frames
        self.pace = pace
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.next = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.timer is not None or self.next:
            return
        found = CONTENT_LENGTH.search(self.buf[:end])
        length = int(found.group(1)) if found else 0
        if len(self.buf) < end + 4 + length:
            return
        self.buf = self.buf[end + 4 + length :]
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + chunked(self.frames[0])
        )
        self.next = 1
        self.timer = asyncio.get_running_loop().call_later(self.pace, self.tick)

    def tick(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        frame = self.frames[self.next]
        self.next += 1
        if self.next == len(self.frames) - 3:  # the last token: finish, usage, [DONE] with it
            frame = b"".join(self.frames[self.next - 1 :])
            self.transport.write(chunked(frame) + b"0\r\n\r\n")
            self.timer, self.next = None, 0
            if self.buf:
                self.data_received(b"")
            return
        self.transport.write(chunked(frame))
        self.timer = asyncio.get_running_loop().call_later(self.pace, self.tick)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer:
            self.timer.cancel()


async def upstream_main(port: int, tokens: int, pace: float) -> None:
    raise_own_limit()
    frames = chat_chunks(tokens)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamConnection(frames, pace), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


# --- the load generator ---------------------------------------------------------------------


class StreamCheck(asyncio.Protocol):
    """One POST /v1/responses stream on its own connection: de-chunks the body, splits SSE
    events, parses each one's data and checks the order. `error` is None for a good stream."""

    def __init__(self, request: bytes, tokens: int, done: asyncio.Future) -> None:
        self.request = request
        self.tokens = tokens
        self.done = done
        self.headers_seen: asyncio.Future = done.get_loop().create_future()
        self.raw = b""
        self.body = b""
        self.in_body = False
        self.seq = 0
        self.deltas = 0
        self.terminal = 0
        self.finished = False  # [DONE] seen
        self.events = 0
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = why

    def data_received(self, data: bytes) -> None:
        self.raw += data
        if not self.in_body:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.raw[:end].split(b"\r\n", 1)[0]
            if b" 200 " not in status:
                self.fail(status.decode(errors="replace"))
            self.in_body = True
            self.raw = self.raw[end + 4 :]
            if not self.headers_seen.done():
                self.headers_seen.set_result(None)
        while True:  # de-chunk
            line = self.raw.find(b"\r\n")
            if line < 0:
                break
            size = int(self.raw[:line].split(b";")[0], 16)
            if len(self.raw) < line + 2 + size + 2:
                break
            self.body += self.raw[line + 2 : line + 2 + size]
            self.raw = self.raw[line + 2 + size + 2 :]
        while (end := self.body.find(b"\n\n")) >= 0:
            self.event(self.body[:end])
            self.body = self.body[end + 2 :]

    def event(self, frame: bytes) -> None:
        data = b"".join(
            line[5:].lstrip() for line in frame.split(b"\n") if line.startswith(b"data:")
        )
        if not data:
            return  # a comment (keep-alive)
        if self.finished:
            return self.fail("data after [DONE]")
        if data == b"[DONE]":
            self.finished = True
            if self.terminal != 1:
                self.fail(f"[DONE] after {self.terminal} terminal events")
            return
        self.events += 1
        event = orjson.loads(data)
        if event.get("sequence_number") != self.seq:
            self.fail(f"sequence_number {event.get('sequence_number')}, expected {self.seq}")
        self.seq += 1
        kind = event["type"]
        if kind == "response.output_text.delta":
            if event["delta"] != f"tok{self.deltas} ":
                self.fail(f"delta {event['delta']!r} at {self.deltas}")
            self.deltas += 1
        elif kind in ("response.completed", "response.failed", "response.incomplete"):
            self.terminal += 1
            if kind != "response.completed":
                self.fail(kind)
            if self.deltas != self.tokens:
                self.fail(f"{self.deltas} deltas of {self.tokens}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.headers_seen.done():
            self.headers_seen.set_result(None)
        if not self.finished:
            self.fail(f"closed before [DONE] ({exc or 'EOF'})")
        if not self.done.done():
            self.done.set_result(self)


async def client_main(port: int, n: int, tokens: int, connecting: int, timeout: float) -> None:
    raise_own_limit()
    loop = asyncio.get_running_loop()
    body = orjson.dumps({"model": "fake-model", "input": "hi", "stream": True})
    request = (
        b"POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    gate = asyncio.Semaphore(connecting)
    started = time.monotonic()
    opened: list[float] = []
    now_open = [0, 0]  # open now, most at once

    async def one() -> StreamCheck | str:
        async with gate:
            done: asyncio.Future = loop.create_future()
            try:
                _, check = await loop.create_connection(
                    lambda: StreamCheck(request, tokens, done), "127.0.0.1", port
                )
            except OSError as exc:
                return f"connect: {exc}"
            await check.headers_seen
            opened.append(time.monotonic() - started)
            now_open[0] += 1
            now_open[1] = max(now_open)
        try:
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return "timed out"
        finally:
            now_open[0] -= 1

    results = await asyncio.gather(*(one() for _ in range(n)))
    failures: dict[str, int] = {}
    events = 0
    for r in results:
        why = r if isinstance(r, str) else r.error
        if isinstance(r, StreamCheck):
            events += r.events
        if why:
            key = why[:80]
            failures[key] = failures.get(key, 0) + 1
    report = {
        "completed": n - sum(failures.values()),
        "failed": sum(failures.values()),
        "failures": failures,
        "events": events,
        "all_open_s": max(opened, default=0.0),
        "most_open": now_open[1],
        "elapsed_s": time.monotonic() - started,
    }
    sys.stdout.write(orjson.dumps(report).decode() + "\n")


# --- the orchestrator -----------------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})}, **kw)


def wait_http(url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer") from None
            time.sleep(0.05)


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "too few samples"
    q = statistics.quantiles(sorted(values), n=100, method="inclusive")
    return f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


def run(a: argparse.Namespace) -> None:
    up_port, gw_port = free_port(), free_port()
    me = str(Path(__file__).resolve())
    upstream = spawn([me, "upstream", "--port", str(up_port), "--tokens", str(a.tokens),
                      "--pace", str(a.pace)])  # fmt: skip
    tmp = tempfile.TemporaryDirectory()
    cfg = Path(tmp.name) / "respgate.toml"
    cfg.write_text(
        f'[server]\nmax_connections = {a.n + 100}\n'
        f'[store]\nenabled = {"false" if a.no_store else "true"}\ndata_dir = "{tmp.name}/data"\n'
        f'[providers.fake]\nkind = "chat_completions"\nbase_url = "http://127.0.0.1:{up_port}/v1"\n'
        'read_timeout = 0\nstream_idle_timeout = 0\n'
        '[[routes]]\nmodel = "fake-model"\nprovider = "fake"\n'
    )  # fmt: skip
    log = open(Path(tmp.name) / "respgate.log", "w+")  # noqa: SIM115
    traced = os.environ.get("RESPGATE_BENCH_TRACEMALLOC", "") not in ("", "0")
    gateway = spawn(
        ["-c", TRACED, "serve", "--port", str(gw_port), "--config", str(cfg)]
        if traced
        else ["-m", "respgate", "serve", "--port", str(gw_port), "--config", str(cfg)],
        env={"RESPGATE_NO_OLLAMA_PROBE": "1", "RESPGATE_WORKERS": "1", "PYTHONPATH": a.src},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{gw_port}"
    try:
        wait_http(f"{url}/healthz")
        ps = psutil.Process(gateway.pid)
        # one stream first so imports, the pool and the store are warm before the baseline
        warm = subprocess.run([sys.executable, me, "client", "--port", str(gw_port), "-n", "1",
                               "--tokens", str(a.tokens)], capture_output=True, text=True)  # fmt: skip
        assert '"failed":0' in warm.stdout, warm.stdout + warm.stderr
        time.sleep(0.5)
        rss0 = ps.memory_info().rss
        if traced:
            gateway.send_signal(signal.SIGUSR1)
            time.sleep(1)
        cpu0 = sum(ps.cpu_times()[:2])
        client = spawn(
            [me, "client", "--port", str(gw_port), "-n", str(a.n), "--tokens", str(a.tokens),
             "--connecting", str(a.connecting), "--timeout", str(a.tokens * a.pace * 3 + 60)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        peak, peak_open, lags, snapped = rss0, 0, [], not traced
        last_poll = 0.0
        with httpx.Client(base_url=url, timeout=10) as probe:
            while client.poll() is None:
                rss = ps.memory_info().rss
                if rss > peak:
                    peak = rss
                    peak_open = sum(
                        1 for c in ps.net_connections("tcp")
                        if c.status == "ESTABLISHED" and c.laddr.port == gw_port
                    )  # fmt: skip
                if not snapped and peak_open >= 0.95 * a.n:
                    gateway.send_signal(signal.SIGUSR2)
                    snapped = True
                if time.monotonic() - last_poll >= 0.5:
                    last_poll = time.monotonic()
                    t0 = time.perf_counter()
                    probe.get("/healthz")
                    lags.append(time.perf_counter() - t0)
                time.sleep(0.25)
        cpu = sum(ps.cpu_times()[:2]) - cpu0
        report = orjson.loads(client.stdout.read())  # type: ignore[union-attr]
    finally:
        gateway.terminate()
        upstream.terminate()
        gateway.wait(30)
        upstream.wait(10)
    tokens = report["completed"] * a.tokens
    mode = "store off" if a.no_store else "store on (SQLite)"
    print(f"{a.n} streams x {a.tokens} tokens at {a.pace} s/token, {mode}, one respgate process")
    print(
        f"  completed {report['completed']}, failed {report['failed']} {report['failures'] or ''}"
    )
    print(f"  all streams open after {report['all_open_s']:.1f} s, run {report['elapsed_s']:.1f} s;"
          f" {report['events']} events checked")  # fmt: skip
    print(f"  respgate RSS before {rss0 / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
          f"({peak_open} client connections open then)")  # fmt: skip
    print(f"  RSS delta / streams: {(peak - rss0) / a.n / 1024:.1f} KiB; most streams open at "
          f"once (client): {report['most_open']}, RSS delta / those: "
          f"{(peak - rss0) / max(report['most_open'], 1) / 1024:.1f} KiB")  # fmt: skip
    print(f"  respgate CPU {cpu:.1f} s = {cpu / max(tokens, 1) * 1e6:.0f} us per token event "
          f"({cpu / max(report['events'], 1) * 1e6:.0f} us per SSE event)")  # fmt: skip
    print(f"  GET /healthz during the run ({len(lags)}): {percentiles(lags)}")
    log.seek(0)
    for line in log:
        if "open-file limit" in line or line.startswith("tracemalloc"):
            print("  respgate:", line.rstrip())
    log.close()
    tmp.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="role")
    for role in ("run", "upstream", "client"):
        s = sub.add_parser(role)
        s.add_argument("-n", type=int, default=10_000, help="concurrent streams")
        s.add_argument("--tokens", type=int, default=60)
        s.add_argument("--pace", type=float, default=1.0, help="seconds between tokens")
        s.add_argument("--port", type=int, default=0)
        s.add_argument("--connecting", type=int, default=256, help="connects in flight")
        s.add_argument("--timeout", type=float, default=300)
        s.add_argument("--no-store", action="store_true", help="[store] enabled = false")
        s.add_argument("--src", default=str(ROOT / "src"), help="the respgate tree to serve")
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("run", "upstream", "client"):
        argv = ["run", *argv]
    a = p.parse_args(argv)
    if a.role == "upstream":
        asyncio.run(upstream_main(a.port, a.tokens, a.pace))
    elif a.role == "client":
        asyncio.run(client_main(a.port, a.n, a.tokens, a.connecting, a.timeout))
    else:
        run(a)


if __name__ == "__main__":
    main()
