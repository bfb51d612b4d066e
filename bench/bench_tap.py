"""The console tap's cost on the hot path, in process: `Observers.emitted` (told by
`Run.push` for every event batch) with no tap (console off), a tap nobody watches, and a
tap being watched (recording each event with its offset), per one-event batch; then the
strict checker's verdict on a recorded run of `--events` deltas. Asserts nothing.

    python bench/bench_tap.py [-n 200000] [--events 1000]
"""

from __future__ import annotations

import argparse
import time

from respgate.console.tap import Tap
from respgate.observe import Observer, Observers, RunInfo
from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.ids import new_id
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Finish, TextDelta, Usage


def per_batch_ns(observers: list[Observer], n: int, watch: bool) -> float:
    told = Observers(observers)
    run = RunInfo("team-a", "echo", "sse")
    run.response_id = "resp_0123456789abcdef0123456789abcdef"
    batch = [{"type": "response.output_text.delta", "delta": "word ", "sequence_number": 4}]
    taps = [o for o in observers if isinstance(o, Tap)]
    for tap in taps:
        tap.max_events = n + 1
        tap.grace = 0.0
    t0 = time.perf_counter()
    if watch:
        with taps[0].watching():
            for _ in range(n):
                told.emitted(run, batch)
    else:
        for _ in range(n):
            told.emitted(run, batch)
    return (time.perf_counter() - t0) / n * 1e9


def verdict_ms(events: int) -> float:
    req = parse_create_request(b'{"model": "echo", "input": "x"}')
    builder = ResponseBuilder(new_response(req, new_id("response"), 0), clock=lambda: 0)
    run = RunInfo("team-a", "echo", "sse")
    run.response_id = builder.response["id"]
    tap = Tap(max_events=events + 100)
    with tap.watching():
        tap.emitted(run, builder.open())
        for _ in range(events):
            tap.emitted(run, builder.feed(TextDelta("word ")))
        tap.emitted(run, builder.feed(Usage(1, events)) + builder.feed(Finish()))
        run.finished_at = time.perf_counter()
        t0 = time.perf_counter()
        verdict = tap.runs[run.response_id].verdict()
    assert verdict["violations"] == [], verdict
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200_000)
    p.add_argument("--events", type=int, default=1000)
    args = p.parse_args()
    print(f"emitted, console off:        {per_batch_ns([], args.n, False):7.0f} ns/batch")
    print(f"emitted, tap nobody watches: {per_batch_ns([Tap()], args.n, False):7.0f} ns/batch")
    print(f"emitted, tap watched:        {per_batch_ns([Tap()], args.n, True):7.0f} ns/batch")
    print(f"verdict on {args.events} deltas:     {verdict_ms(args.events):7.2f} ms")


if __name__ == "__main__":
    main()
