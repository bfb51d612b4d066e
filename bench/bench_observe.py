"""The per-response cost of each operations observer, in process (no sockets, no
noise from neighbours): a run's lifecycle steps told `-n` times to no observers,
then to `Metrics`, to `ResponseLog` (JSON lines to /dev/null) and to both.
Prints microseconds per response. Asserts nothing.

    python bench/bench_observe.py [-n 50000]
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from respgate.logs import JsonFormatter, ResponseLog
from respgate.metrics import Metrics
from respgate.observe import Observer, Observers, RunInfo
from respgate.providers.base import Attempt

USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 50,
    "output_tokens_details": {"reasoning_tokens": 10},
    "total_tokens": 62,
}
RESPONSE: dict[str, Any] = {"status": "completed", "usage": USAGE}


def per_response_us(observers: list[Observer], n: int) -> float:
    told = Observers(observers)
    t0 = time.perf_counter()
    for _ in range(n):
        run = RunInfo("team-a", "fake-model", "sse", request_id="req-1")
        run.response_id = "resp_0123456789abcdef0123456789abcdef"
        run.attempts = [Attempt("fake", "fake-model")]
        run.provider, run.upstream_model = "fake", "fake-model"
        told.accepted(run)
        told.upstream_opened(run)
        told.upstream_first_byte(run)
        told.client_first_byte(run)
        told.finished(run, RESPONSE)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=50_000)
    n = p.parse_args().n
    handler = logging.StreamHandler(open("/dev/null", "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bench.response")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    metrics = Metrics(lambda name: name)
    base = per_response_us([], n)
    print(f"lifecycle steps, no observers: {base:6.1f} us/response")
    for name, observers in (
        ("Metrics", [metrics]),
        ("ResponseLog (JSON)", [ResponseLog(logger)]),
        ("Metrics + ResponseLog", [metrics, ResponseLog(logger)]),
    ):
        print(f"{name + ':':30} +{per_response_us(observers, n) - base:5.1f} us/response")


if __name__ == "__main__":
    main()
