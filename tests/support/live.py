"""Real servers on 127.0.0.1 (free ports) for tests: uvicorn in a thread (`LiveServer`)
or `respgate serve` in a child process (`ServerProcess`, `running`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from respgate.engine import Engine
from respgate.server.app import create_app
from respgate.server.edge import EdgeLimits, server_config

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(
        self, engine: Engine, limits: EdgeLimits | None = None, **app_options: Any
    ) -> None:
        self.engine = engine
        self.port = free_port()
        config = server_config(
            create_app(engine, **app_options),
            host="127.0.0.1",
            port=self.port,
            limits=limits or EdgeLimits(),
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/responses"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ServerProcess:
    """`respgate serve` in a child process."""

    def __init__(self, env: dict[str, str], *args: str, stderr: Any = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "respgate",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *args,
            ],
            # one process (its /healthz counts everything) unless env or args say more
            env={**os.environ, "PYTHONPATH": SRC, "RESPGATE_WORKERS": "1", **env},
            stderr=stderr,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextlib.contextmanager
def running(env: dict[str, str], *args: str, stderr: Any = None) -> Iterator[ServerProcess]:
    server = ServerProcess(env, *args, stderr=stderr)
    try:
        yield server
    finally:
        server.stop()
