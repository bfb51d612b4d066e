"""A run always ends: one terminal event, then the end of its source, and its final save
completes, whatever cancels it and whenever (issue 8, part 1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from respgate.engine import Run
from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.lifecycle import TERMINAL_EVENTS
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Finish, Signal, TextDelta


async def upstream(finish: bool = True) -> AsyncIterator[Signal]:
    yield TextDelta("Hello")
    if finish:
        yield Finish()
    else:
        await asyncio.sleep(3600)


class SlowSave:
    """An `on_terminal` that takes a while; records what it saved."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.saved: list[str] = []

    async def __call__(self, run: Run) -> None:
        self.started.set()
        await self.release.wait()
        self.saved.append(run.response["status"])


def new_run(signals: AsyncIterator[Signal], save: SlowSave) -> Run:
    req = parse_create_request(b'{"model":"echo","input":"hi"}')
    builder = ResponseBuilder(new_response(req, "resp_1", 0), clock=lambda: 0)
    run = Run(builder, signals, save)
    run.push(builder.open())
    run.start()
    return run


async def drain(run: Run) -> list[dict]:
    events: list[dict] = []
    async with asyncio.timeout(10):
        while batch := await run.next_batch():
            events += batch
    return events


async def test_abort_during_the_final_save_lets_it_finish() -> None:
    save = SlowSave()
    run = new_run(upstream(), save)
    await asyncio.wait_for(save.started.wait(), 10)
    run.abort("client_disconnected", "The client disconnected.")  # too late: it is saving
    save.release.set()
    events = await drain(run)
    assert [e["type"] for e in events if e["type"] in TERMINAL_EVENTS] == ["response.completed"]
    assert save.saved == ["completed"]
    assert run.drained


async def test_abort_mid_stream_fails_the_run_and_saves_it() -> None:
    save = SlowSave()
    save.release.set()
    run = new_run(upstream(finish=False), save)
    await asyncio.sleep(0.01)
    run.abort("client_disconnected", "The client disconnected.")
    events = await drain(run)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "client_disconnected"
    assert save.saved == ["failed"]


@pytest.mark.parametrize("while_saving", [False, True])
async def test_a_foreign_cancel_still_ends_the_run(while_saving: bool) -> None:
    save = SlowSave()
    run = new_run(upstream(finish=while_saving), save)
    if while_saving:
        await asyncio.wait_for(save.started.wait(), 10)
    else:
        save.release.set()
        await asyncio.sleep(0.01)
    assert run.task is not None
    run.task.cancel()  # not `abort`: e.g. the event loop shutting down
    save.release.set()
    events = await drain(run)
    assert sum(e["type"] in TERMINAL_EVENTS for e in events) == 1
    assert len(save.saved) == 1  # the final save completed
    with pytest.raises(asyncio.CancelledError):
        await run.task


class Recorder:
    """A surface builder that writes one event per signal it is fed."""

    def __init__(self) -> None:
        self.fed: list[str] = []

    def open(self) -> list[dict]:
        return [{"type": "start"}]

    def feed(self, signal: Signal) -> list[dict]:
        self.fed.append(type(signal).__name__)
        return [{"type": type(signal).__name__}]

    def result(self) -> dict:
        return {"fed": self.fed}


async def test_a_surface_builder_sees_every_signal_and_its_events_are_the_runs() -> None:
    req = parse_create_request(b'{"model":"echo","input":"hi"}')
    builder = ResponseBuilder(new_response(req, "resp_1", 0), clock=lambda: 0)
    surface = Recorder()
    save = SlowSave()
    save.release.set()
    builder.open()  # the record's opening events; the client sees the surface's
    run = Run(builder, upstream(), save, surface=surface)
    run.push(surface.open())
    run.start()
    events = await drain(run)
    assert [e["type"] for e in events] == ["start", "TextDelta", "Finish"]
    # The Responses builder kept the record all the same.
    assert save.saved == ["completed"]
    assert builder.response["output"][0]["content"][0]["text"] == "Hello"


async def test_a_surface_builder_is_fed_the_failure_that_ends_a_truncated_run() -> None:
    async def truncated() -> AsyncIterator[Signal]:
        yield TextDelta("Hel")

    req = parse_create_request(b'{"model":"echo","input":"hi"}')
    builder = ResponseBuilder(new_response(req, "resp_1", 0), clock=lambda: 0)
    surface = Recorder()
    builder.open()
    run = Run(builder, truncated(), None, surface=surface)
    run.start()
    events = await drain(run)
    assert [e["type"] for e in events] == ["TextDelta", "Failure"]
    assert run.info.error_code == "upstream_truncated"
    assert builder.response["status"] == "failed"
