"""CPU cost of one log line: respgate's per-response line through `logs.configure`, as
`respgate serve` writes it. Prints microseconds per line (best of the rounds). The lines go
to a temporary file. Asserts nothing.

    python bench/bench_logs.py [--lines 20000] [--rounds 3] [--format text|json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from respgate import logs
from respgate.logs import ResponseLog
from respgate.observe import RunInfo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--format", choices=logs.LOG_FORMATS, default="text")
    a = p.parse_args()
    run = RunInfo("bench", "fake-model", "sse", request_id="0" * 32)
    run.response_id, run.status = "resp_" + "0" * 32, "completed"
    run.client_first_byte_at, run.finished_at = run.accepted_at + 0.001, run.accepted_at + 0.01
    run.usage = {"input_tokens": 10, "output_tokens": 50}
    observer = ResponseLog()
    with tempfile.TemporaryFile("w") as sink:
        stderr, sys.stderr = sys.stderr, sink  # `configure` logs to stderr
        try:
            logs.configure(a.format)
            best = float("inf")
            for _ in range(a.rounds):
                start = time.perf_counter()
                for _ in range(a.lines):
                    observer.delivered(run)
                best = min(best, (time.perf_counter() - start) / a.lines)
        finally:
            sys.stderr = stderr
    print(f"{a.format} response line: {best * 1e6:.1f} us (best of {a.rounds} x {a.lines})")


if __name__ == "__main__":
    main()
