"""The shared deadline heap: many deadlines on one loop timer (respgate.deadlines)."""

from __future__ import annotations

import asyncio

import pytest

from respgate.deadlines import Deadlines


async def test_deadlines_fire_in_time_order_and_cancelled_ones_never() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.for_loop(loop)
    assert Deadlines.for_loop(loop) is deadlines  # one per loop
    fired: list[str] = []
    now = loop.time()
    deadlines.call_at(now + 0.06, fired.append, "late")
    deadlines.call_at(now + 0.02, fired.append, "early")
    dropped = deadlines.call_at(now + 0.04, fired.append, "cancelled")
    deadlines.call_at(now + 0.04, fired.append, "middle")
    deadlines.cancel(dropped)
    deadlines.cancel(dropped)  # twice is harmless
    assert len(deadlines) == 3
    await asyncio.sleep(0.03)
    assert fired == ["early"]
    await asyncio.sleep(0.1)
    assert fired == ["early", "middle", "late"]
    assert len(deadlines) == 0


async def test_an_earlier_deadline_rearms_the_one_timer() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[float] = []
    deadlines.call_at(loop.time() + 5, fired.append, 5.0)
    deadlines.call_at(loop.time() + 0.01, lambda _: fired.append(loop.time()), None)
    await asyncio.sleep(0.1)
    assert len(fired) == 1 and len(deadlines) == 1


async def test_a_callback_may_set_the_next_deadline_and_a_failing_one_stops_no_other() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    deadlines = Deadlines(loop)
    ticks: list[int] = []

    def tick(n: int) -> None:
        ticks.append(n)
        if n < 3:
            deadlines.call_at(loop.time(), tick, n + 1)  # due at once: the next pass runs it

    def boom(_: object) -> None:
        raise ValueError("boom")

    now = loop.time()
    deadlines.call_at(now + 0.01, boom, None)
    deadlines.call_at(now + 0.01, tick, 1)
    await asyncio.sleep(0.1)
    assert ticks == [1, 2, 3]
    assert [type(e["exception"]) for e in errors] == [ValueError]


@pytest.mark.parametrize("kept", [0, 1, 50])
async def test_cancelled_entries_are_dropped_when_they_are_half_the_heap(kept: int) -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[int] = []
    keep = [deadlines.call_at(loop.time() + 0.02, fired.append, i) for i in range(kept)]
    gone = [deadlines.call_at(loop.time() + 60, fired.append, -1) for _ in range(200)]
    for entry in gone:
        deadlines.cancel(entry)
    assert len(deadlines) == kept
    assert len(deadlines._heap) < kept + 200  # rebuilt: the cancelled entries are not held
    assert all(entry[2] is None and entry[3] is None for entry in gone)  # no references kept
    await asyncio.sleep(0.1)
    assert fired == list(range(kept)) and len(keep) == kept
