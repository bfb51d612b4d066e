"""The background event log: append, replay, follow, cancel, recovery, retention."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from respgate.protocol.errors import ApiError
from respgate.protocol.validate import check_events
from respgate.store.sql import SqlStore, StoreError
from tests.store.store_helpers import Background, completed, wire

HANG_GUARD = 10  # seconds; a follower still running after this has hung


async def collect(
    store: SqlStore, response_id: str, tenant: str = "", after: int | None = None
) -> list[dict[str, Any]]:
    return await asyncio.wait_for(_drain(store, response_id, tenant, after), HANG_GUARD)


async def _drain(
    store: SqlStore, response_id: str, tenant: str, after: int | None
) -> list[dict[str, Any]]:
    return [event async for event in store.follow(response_id, tenant, after)]


async def test_queued_then_generated_then_replayed_from_any_point(store: SqlStore) -> None:
    bg = Background(tenant="a")
    assert await store.save(bg.record)
    assert await store.append_events(bg.id, bg.queued)
    assert (await store.get(bg.id, "a"))["status"] == "queued"
    running = bg.run()
    assert await store.append_events(bg.id, running)
    assert (await store.get(bg.id, "a"))["status"] == "in_progress"
    body = bg.text("Hel") + bg.text("lo")
    assert await store.append_events(bg.id, body)
    final = bg.finish()
    assert await store.append_events(bg.id, final)

    got = await store.get(bg.id, "a")
    assert got["status"] == "completed"
    assert got["output"][0]["content"][0]["text"] == "Hello"
    everything = wire(bg.queued + running + body + final)
    assert await collect(store, bg.id, "a") == everything
    assert await collect(store, bg.id, "a", after=3) == everything[4:]
    assert await collect(store, bg.id, "a", after=everything[-1]["sequence_number"]) == []
    assert await collect(store, bg.id, "b") == []


async def test_a_follower_gets_live_events_until_the_terminal_one(store: SqlStore) -> None:
    bg = Background()
    await store.save(bg.record)
    await store.append_events(bg.id, bg.queued)
    follower = asyncio.create_task(collect(store, bg.id, after=0))
    await asyncio.sleep(0)
    produced = bg.run() + bg.text("a")
    await store.append_events(bg.id, produced)
    for _ in range(3):
        more = bg.text("b")
        produced += more
        await store.append_events(bg.id, more)
    final = bg.finish()
    await store.append_events(bg.id, final)
    events = await follower
    assert events == wire(bg.queued[1:] + produced + final)
    assert [e["sequence_number"] for e in events] == list(range(1, len(events) + 1))


async def test_followers_on_another_process_see_live_events(open_store) -> None:
    # SQLite: two workers of one group. The reader's poll interval is longer than the hang
    # guard, so only a cross-process wake-up (NOTIFY; SQLite's log watcher) delivers.
    producer = await open_store(shared=True)
    reader = await open_store(shared=True, poll_interval=60)
    bg = Background()
    await producer.save(bg.record)
    await producer.append_events(bg.id, bg.queued)
    follower = asyncio.create_task(collect(reader, bg.id))
    await asyncio.sleep(0.01)
    rest = bg.run() + bg.text("x") + bg.finish()
    for event in rest:
        await producer.append_events(bg.id, [event])
    assert await follower == wire(bg.queued + rest)
    assert (await reader.get(bg.id, ""))["status"] == "completed"


async def test_many_logs_written_by_two_processes_reach_a_third_whole(open_store) -> None:
    # Two workers append to ten logs at once, a third follows all of them: every follower
    # gets its own log exactly (nothing lost, repeated or from another response).
    producers = [await open_store(shared=True) for _ in range(2)]
    reader = await open_store(shared=True, poll_interval=60)
    logs = [Background() for _ in range(10)]
    for i, bg in enumerate(logs):
        await producers[i % 2].save(bg.record)
        await producers[i % 2].append_events(bg.id, bg.queued)
    followers = [asyncio.create_task(collect(reader, bg.id)) for bg in logs]
    await asyncio.sleep(0.05)

    async def produce(i: int, bg: Background) -> list[dict[str, Any]]:
        rest = bg.run() + [e for n in range(20) for e in bg.text(f"{i}.{n} ")] + bg.finish()
        for event in rest:
            await producers[i % 2].append_events(bg.id, [event])
        return rest

    written = await asyncio.gather(*(produce(i, bg) for i, bg in enumerate(logs)))
    for bg, rest, follower in zip(logs, written, followers, strict=True):
        assert await follower == wire(bg.queued + rest)


async def test_cancel_ends_the_response_and_its_followers(store: SqlStore) -> None:
    bg = Background(tenant="a")
    await store.save(bg.record)
    started = bg.queued + bg.run() + bg.text("partial")
    await store.append_events(bg.id, started)
    follower = asyncio.create_task(collect(store, bg.id, "a"))
    assert await store.cancel(bg.id, "b") is None
    cancelled = await store.cancel(bg.id, "a")
    assert cancelled["status"] == "cancelled"
    events = await follower
    # Ended as a live failure ends: the open message closed (incomplete), `error`, then
    # `response.failed` whose Response keeps status `cancelled` and the partial text.
    assert [e["type"] for e in events[-5:]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    terminal = events[-1]
    assert terminal["type"] == "response.failed"
    assert terminal["response"]["status"] == "cancelled"
    assert terminal["response"]["error"] is None
    assert terminal["sequence_number"] == started[-1]["sequence_number"] + 5
    assert events[-2]["type"] == "error" and events[-2]["code"] == "cancelled"
    assert events[-3]["item"]["status"] == "incomplete"
    assert check_events([*events, "[DONE]"]) == []
    stored = await store.get(bg.id, "a")
    assert stored["output"][0]["content"][0]["text"] == "partial"
    # The producer learns it must stop; nothing it sends afterwards is kept.
    assert not await store.append_events(bg.id, bg.text("more"))
    assert not await store.save(bg.record)
    assert (await store.get(bg.id, "a"))["status"] == "cancelled"
    assert (await store.cancel(bg.id, "a"))["status"] == "cancelled"  # idempotent
    assert await collect(store, bg.id, "a") == events


async def test_cancel_refuses_foreground_and_finished_responses(store: SqlStore) -> None:
    foreground = completed("done")
    await store.save(foreground)
    with pytest.raises(ApiError) as err:
        await store.cancel(foreground.response["id"], "")
    assert err.value.status == 400
    bg = Background()
    await store.save(bg.record)
    await store.append_events(bg.id, bg.queued + bg.run() + bg.finish())
    with pytest.raises(ApiError, match="completed"):
        await store.cancel(bg.id, "")


async def test_responses_of_a_dead_process_fail_and_followers_end(open_store) -> None:
    dead = await open_store()
    bg = Background()
    await dead.save(bg.record)
    started = bg.queued + bg.run() + bg.text("half")
    await dead.append_events(bg.id, started)
    finished = completed("kept")
    await dead.save(finished)
    await dead.close()  # the process is gone: its lock is released

    alive = await open_store()
    events = await collect(alive, bg.id, after=1)  # no explicit recover: the follower does not hang
    # Ended as a live failure ends: the open message closed, `error`, `response.failed`.
    assert events[: len(started) - 2] == wire(started[2:])
    assert [e["type"] for e in events[len(started) - 2 :]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    assert check_events([*wire(started[:2]), *events, "[DONE]"]) == []
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    assert failed["output"][0]["content"][0]["text"] == "half"  # the partial output is kept
    assert await alive.get(bg.id, "") == failed
    assert (await alive.get(finished.response["id"], ""))["status"] == "completed"
    assert await alive.recover() == []


async def test_recover_at_start_fails_only_dead_owners(open_store) -> None:
    first = await open_store()
    left = Background()
    await first.save(left.record)
    await first.append_events(left.id, left.queued)
    await first.close()
    second = await open_store()
    assert await second.recover() == [left.id]
    mine = Background()
    await second.save(mine.record)
    assert await second.recover() == []
    third = await open_store(shared=True)  # SQLite: another worker of `second`'s group
    assert await third.recover() == []  # `second` is alive
    assert (await third.get(mine.id, ""))["status"] == "queued"


async def test_a_dead_workers_responses_fail_and_a_live_ones_do_not(open_store) -> None:
    dead, alive, follower = [await open_store(shared=True) for _ in range(3)]
    orphan, running = Background(), Background()
    for store, bg in ((dead, orphan), (alive, running)):
        await store.save(bg.record)
        await store.append_events(bg.id, bg.queued + bg.run() + bg.text("half"))
    await dead.close()
    events = await collect(follower, orphan.id, after=4)  # the follower recovers it
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert await follower.recover() == []
    assert (await follower.get(running.id, ""))["status"] == "in_progress"
    assert await alive.append_events(running.id, running.finish())
    assert (await follower.get(running.id, ""))["status"] == "completed"


async def test_one_process_per_sqlite_data_directory(open_store) -> None:
    if open_store.kind != "sqlite":
        pytest.skip("SQLite only")
    await open_store()
    with pytest.raises(StoreError, match="Another respgate process"):
        await open_store()


async def test_retention_expires_final_background_responses_only(open_store) -> None:
    store = await open_store(retention=0)
    finished, running = Background(), Background()
    for bg in (finished, running):
        await store.save(bg.record)
        await store.append_events(bg.id, bg.queued)
    await store.append_events(finished.id, finished.run() + finished.finish())
    foreground = completed("forever")
    await store.save(foreground)
    assert await store.expire() == 1
    assert await store.get(finished.id, "") is None
    assert await collect(store, finished.id) == []
    assert (await store.get(running.id, ""))["status"] == "queued"
    assert await store.get(foreground.response["id"], "") is not None


async def test_no_retention_keeps_everything(open_store) -> None:
    store = await open_store(retention=None)
    bg = Background()
    await store.save(bg.record)
    await store.append_events(bg.id, bg.queued + bg.run() + bg.finish())
    assert await store.expire() == 0
    assert await store.get(bg.id, "") is not None


async def test_deleting_a_running_response_ends_its_followers_and_producer(store: SqlStore) -> None:
    bg = Background()
    await store.save(bg.record)
    await store.append_events(bg.id, bg.queued)
    follower = asyncio.create_task(collect(store, bg.id))
    await asyncio.sleep(0.01)
    assert await store.delete(bg.id, "")
    assert await follower in ([], wire(bg.queued))
    assert not await store.append_events(bg.id, bg.run())
