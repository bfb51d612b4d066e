"""`respgate serve --workers N`: N processes serving one listening socket.

The supervisor binds the socket (and, for SQLite, takes the data directory for the group)
before it forks the workers, so each worker inherits both and `accept`s from the one queue
the kernel keeps for the port. A worker tells the supervisor it serves by writing its pid
to a pipe; the supervisor announces the group once every first worker has. A worker that
dies is replaced (at most once per `RESTART_DELAY` seconds); a worker that dies before the
group ever served ends the group (a start-up error, not a crash to repeat).

Signals: the first SIGTERM or SIGINT is passed on to every worker as SIGTERM (each drains
as a single `respgate serve` does: `/readyz` 503, `--drain-delay`, grace, then
`response.failed` for what is left), the supervisor closes its copy of the socket (so the
port closes when the last worker stops accepting) and restarts nobody; a second signal is
passed on as it came (SIGINT then forces the workers' exit). On Linux a worker whose
supervisor dies gets SIGTERM (`PR_SET_PDEATHSIG`), so no worker outlives its group.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger("respgate.workers")

MAX_DEFAULT_WORKERS = 8
RESTART_DELAY = 1.0  # seconds between two replacements of dead workers
PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """One worker per core this process may run on, at most `MAX_DEFAULT_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


Work = Callable[[Callable[[], None]], int]


class Supervisor:
    """Runs `count` forked workers of `work` until a signal stops them.

    `work(ready)` runs in each worker and returns its exit code; it calls `ready()` once it
    serves. `on_ready(pids)` runs once, when every first worker is ready; `on_exit(pid)`
    after each worker's death (e.g. to drop its share of a live gauge)."""

    def __init__(
        self,
        count: int,
        work: Work,
        sock: socket.socket,
        *,
        on_ready: Callable[[list[int]], None] = lambda pids: None,
        on_exit: Callable[[int], None] = lambda pid: None,
    ) -> None:
        self.count = count
        self.work = work
        self.sock = sock
        self.on_ready = on_ready
        self.on_exit = on_exit
        self.workers: dict[int, float] = {}  # pid -> started at (monotonic)
        self.ready: set[int] = set()
        self.serving = False  # every first worker has been ready
        self.stopping = False
        self.code = 0
        self._next_start = 0.0

    def run(self) -> int:
        """Fork the workers and supervise them; the group's exit code once all have ended."""
        read_fd, self._ready_fd = os.pipe()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.count):
                self._start(read_fd)
            while self.workers:
                self._reap()
                if self.stopping:
                    time.sleep(0.05)  # signals interrupt it; nothing else to read
                    continue
                if len(self.workers) < self.count and time.monotonic() >= self._next_start:
                    self._next_start = time.monotonic() + RESTART_DELAY
                    self._start(read_fd)
                readable, _, _ = select.select([read_fd], [], [], 0.1)
                if readable:
                    self._read_ready(read_fd)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(read_fd)
            os.close(self._ready_fd)
        return self.code

    def _start(self, read_fd: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            os._exit(self._worker(parent))
        self.workers[pid] = time.monotonic()

    def _worker(self, parent: int) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        code = 1
        try:
            if sys.platform.startswith("linux"):
                ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the supervisor died before prctl took effect
                return 1
            ready_fd = self._ready_fd

            def ready() -> None:
                os.write(ready_fd, f"{os.getpid()}\n".encode())

            code = self.work(ready)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return code

    def _read_ready(self, read_fd: int) -> None:
        for line in os.read(read_fd, 4096).split():
            self.ready.add(int(line))
        if not self.serving and self.ready >= self.workers.keys():
            self.serving = True
            self.on_ready(sorted(self.workers))

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            if pid not in self.workers:
                continue
            del self.workers[pid]
            self.ready.discard(pid)
            self.on_exit(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            if not self.serving:
                log.error("worker %d exited (%s) before serving; stopping", pid, describe(code))
                self.code = code if code > 0 else 1
                self._stop(signal.SIGTERM)
                continue
            log.warning("worker %d exited (%s); starting another", pid, describe(code))

    def _on_signal(self, sig: int, frame: Any) -> None:
        if self.stopping:
            self._send(sig)  # a second signal: as it came
            return
        if sig == signal.SIGINT:
            self.code = 130  # as a single process ends on Ctrl-C
        self._stop(signal.SIGTERM)

    def _stop(self, sig: int) -> None:
        self.stopping = True
        self.sock.close()  # no worker starts again: the port closes with the last worker
        self._send(sig)

    def _send(self, sig: int) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def describe(code: int) -> str:
    """An exit code as `os.waitstatus_to_exitcode` gives it, in words."""
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
