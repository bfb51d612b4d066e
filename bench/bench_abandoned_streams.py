"""Abandoned streams: clients that send a `store: true` streaming request, read one byte
and close. Prints what is left 10 s later (/healthz, server RSS) and how SIGTERM goes.

python bench/bench_abandoned_streams.py [--streams 1000] [--input-bytes 11] [--rounds 1]

Starts `respgate serve --grace 3` on a free port with a temporary data directory.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

SRC = str(Path(__file__).resolve().parents[1] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def abandon(port: int, body: bytes) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    s.recv(1)
    s.close()


def main(streams: int, input_bytes: int, rounds: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "respgate", "serve", "--port", str(port), "--grace", "3"],
            env={
                **os.environ,
                "PYTHONPATH": SRC,
                "RESPGATE_DATA_DIR": data,
                "RESPGATE_WORKERS": "1",
            },
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.05)
        text = "hello there" if input_bytes <= 11 else "x" * input_bytes
        body = orjson.dumps({"model": "echo", "input": text, "stream": True})
        before = rss_kb(proc.pid)
        for round_ in range(rounds):
            started = time.monotonic()
            for _ in range(streams):
                abandon(port, body)
            sent = time.monotonic() - started
            print(f"round {round_ + 1}: {streams} abandoned streams sent in {sent:.1f} s")
            time.sleep(10)
            health = httpx.get(f"{url}/healthz", timeout=10).json()
            print(f"  10 s later: /healthz {health}")
            print(f"  RSS: {before / 1024:.0f} MB at start, {rss_kb(proc.pid) / 1024:.0f} MB now")
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        print(f"SIGTERM -> exit in {time.monotonic() - stopped:.1f} s")
        log.seek(0)
        output = log.read().decode(errors="replace")
        cancelled = re.search(r"Cancel (\d+) running task", output)
        print(f"tasks cancelled at shutdown: {cancelled.group(1) if cancelled else 0}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--input-bytes", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    main(args.streams, args.input_bytes, args.rounds)
