"""The tap's bounds: events kept per run, finished runs kept, nothing recorded while
nobody watches (and everything dropped once the grace period has passed)."""

from __future__ import annotations

import time

from respgate.console.tap import Tap
from respgate.observe import RunInfo

DELTA = {"type": "response.output_text.delta", "delta": "x"}


def run(n: int) -> RunInfo:
    info = RunInfo("t", "echo", "sse")
    info.response_id = f"resp_{n}"
    return info


def finish(tap: Tap, info: RunInfo) -> None:
    info.finished_at = time.perf_counter()
    tap.finished(info, {"status": "completed"})


def test_events_beyond_the_bound_are_counted_not_kept() -> None:
    tap = Tap(max_events=5)
    with tap.watching():
        info = run(1)
        tap.emitted(info, [DELTA] * 3)
        tap.emitted(info, [DELTA] * 4)
    tapped = tap.runs["resp_1"]
    assert len(tapped.events) == 5 and tapped.dropped == 2
    finish(tap, info)
    assert tapped.verdict() == {"checked": False, "reason": "2 events were not kept"}


def test_only_the_most_recent_finished_runs_are_kept() -> None:
    tap = Tap(recent=2)
    with tap.watching():
        infos = [run(i) for i in range(4)]
        for info in infos:
            tap.emitted(info, [DELTA])
        for info in infos[:3]:
            finish(tap, info)
    assert list(tap.runs) == ["resp_1", "resp_2", "resp_3"]  # 2 finished + 1 in flight


def test_nothing_while_nobody_watches_and_all_dropped_after_the_grace() -> None:
    tap = Tap(grace=0.05)
    tap.emitted(run(1), [DELTA])
    assert not tap.runs  # nobody ever watched
    with tap.watching():
        tap.emitted(run(2), [DELTA])
    tap.emitted(run(3), [DELTA])  # within the grace period: still recorded
    assert list(tap.runs) == ["resp_2", "resp_3"]
    time.sleep(0.06)
    tap.emitted(run(4), [DELTA])
    assert not tap.runs
