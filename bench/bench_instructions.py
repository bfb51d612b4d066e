"""Instructions per stream, the gateway's and the fake upstream's, counted by valgrind's
callgrind: a ratio that does not move with the machine (issue 11 part 1, counted rather than
timed). Prints numbers; asserts nothing.

The fake upstream (bench/fake_upstream.py) and `respgate serve` (one process, as a user gets
it: SQLite store on, one API key, info logging to a file) each run under
`valgrind --tool=callgrind --instr-atstart=no`. After `--warmup` streams, counting is turned
on in both (`callgrind_control -i on`), `-n` streams of `--tokens` tokens go through the
gateway one at a time, counting is turned off, and each process's total of executed
instructions (`Ir`, every thread) is divided by the streams. CPU time (bench_overhead.py)
also counts the kernel's work for each system call, whose price differs between machines
(the upstream makes a write per chunk, the gateway one per batch); instructions count user
space only, so this ratio compares the Python work of relaying with that of producing.
Both processes run ~50x slower under callgrind: keep `-n` small.

    python bench/bench_instructions.py [-n 40] [--warmup 20] [--tokens 50] [--unstored] [--src DIR]
                                       [--keep DIR]

`--keep DIR` leaves the two callgrind files there (`respgate.cg`, `upstream.cg`) for
`callgrind_annotate`, which shows where the instructions went, by C function.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import BENCH_KEY, KEYS_TOML, fake_route, free_port, wait_ready
from loadgen import BODIES, run_load

ROOT = Path(__file__).resolve().parents[1]


def under_callgrind(out: Path, *command: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}", *command]  # fmt: skip


def counting(pid: int, on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)],
                   check=True, capture_output=True)  # fmt: skip


def instructions(out: Path) -> int:
    """The `Ir` total of a callgrind output file (its `totals:` line)."""
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no total in {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", "--streams", type=int, default=40)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--tokens", type=int, default=50)
    p.add_argument("--unstored", action="store_true", help='requests with "store": false')
    p.add_argument("--src", default=str(ROOT / "src"), help="the respgate source tree to serve")
    p.add_argument("--keep", help="a directory to leave the callgrind files in")
    a = p.parse_args()
    body = {**BODIES["responses"], **({"store": False} if a.unstored else {})}
    env = {**os.environ, "PYTHONPATH": a.src, "RESPGATE_WORKERS": "1",
           "RESPGATE_NO_OLLAMA_PROBE": "1"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        up_port, port = free_port(), free_port()
        cfg = Path(tmp, "respgate.toml")
        cfg.write_text(f'[store]\ndata_dir = "{tmp}/data"\n{KEYS_TOML}{fake_route(up_port)}')
        outs = {"upstream": Path(tmp, "upstream.cg"), "respgate": Path(tmp, "respgate.cg")}
        log = open(Path(tmp, "respgate.log"), "wb")  # noqa: SIM115 (closed with the dir)
        procs = {
            "upstream": subprocess.Popen(
                under_callgrind(outs["upstream"], sys.executable,
                                str(ROOT / "bench/fake_upstream.py"), "--port", str(up_port),
                                "--tokens", str(a.tokens)),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            "respgate": subprocess.Popen(
                under_callgrind(outs["respgate"], sys.executable, "-m", "respgate", "serve",
                                "--port", str(port), "--config", str(cfg), "--log-level", "info"),
                env=env, stdout=log, stderr=log,
            ),
        }  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{up_port}/v1/models", timeout=120)
            wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=120)
            url = f"http://127.0.0.1:{port}/v1/responses"

            def load(n: int) -> None:
                result = asyncio.run(run_load(url, mode="responses", requests=n, body=body,
                                              api_key=BENCH_KEY))  # fmt: skip
                if result.errors or len(result.total) != n:
                    raise SystemExit(f"{result.errors} of {n} streams failed")

            load(a.warmup)
            for proc in procs.values():
                counting(proc.pid, True)
            start = time.perf_counter()
            load(a.streams)
            seconds = time.perf_counter() - start
            for proc in procs.values():
                counting(proc.pid, False)
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(120)
        per_stream = {name: instructions(out) / a.streams for name, out in outs.items()}
        if a.keep:
            Path(a.keep).mkdir(parents=True, exist_ok=True)
            for out in outs.values():
                shutil.copy(out, Path(a.keep, out.name))
    kind = "unstored" if a.unstored else "stored"
    print(f"{a.streams} {kind} streams of {a.tokens} tokens, one at a time, under callgrind "
          f"({seconds:.0f} s)")  # fmt: skip
    for name, count in per_stream.items():
        print(f"  {name:>9}: {count / 1e6:8.2f} M instructions per stream")
    print(f"  ratio (respgate / upstream): {per_stream['respgate'] / per_stream['upstream']:.2f}")


if __name__ == "__main__":
    main()
