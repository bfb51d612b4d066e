"""LeanEvent: asyncio.Event's behaviour for uvicorn's per-connection events (server/edge.py)."""

from __future__ import annotations

import asyncio

import pytest

from respgate.server.edge import LeanEvent


@pytest.mark.parametrize("kind", [asyncio.Event, LeanEvent])
async def test_behaves_like_asyncio_event(kind: type) -> None:
    event = kind()
    assert not event.is_set()
    woken: list[int] = []

    async def waiter(n: int) -> None:
        assert await event.wait() is True
        woken.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert woken == []
    event.set()
    event.set()  # twice is harmless
    await asyncio.gather(*tasks)
    assert sorted(woken) == [0, 1, 2] and event.is_set()
    assert await event.wait() is True  # set: returns at once
    event.clear()
    assert not event.is_set()
    blocked = asyncio.create_task(event.wait())
    await asyncio.sleep(0.01)
    assert not blocked.done()
    blocked.cancel()  # a cancelled waiter leaves nothing behind
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert not event._waiters


async def test_lean_event_can_start_set() -> None:
    # the edge carries over the state of the asyncio.Event it replaces
    assert await asyncio.wait_for(LeanEvent(True).wait(), 1) is True
    assert not LeanEvent().is_set()
