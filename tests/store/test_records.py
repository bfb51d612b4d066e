"""Records, chains, input items, delete, tenant scoping: every backend."""

from __future__ import annotations

import pytest

from respgate.protocol.errors import ApiError
from respgate.store.base import Chain
from respgate.store.sql import MIGRATIONS, Query, SqlStore, StoreError
from tests.store.store_helpers import Background, completed

TOOL_TURN = [
    {"type": "message", "role": "user", "content": "weather?"},
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    {"type": "reasoning", "summary": []},
    {"type": "message", "role": "user", "content": "thanks", "id": "msg_client"},
]


async def test_save_then_get_returns_the_response_with_output_and_usage(store: SqlStore) -> None:
    record = completed("Hello!", tenant="a")
    assert await store.save(record)
    got = await store.get(record.response["id"], "a")
    assert got == record.response
    assert got["status"] == "completed"
    assert got["output"][0]["content"][0]["text"] == "Hello!"
    assert got["usage"]["total_tokens"] == 8


async def test_unknown_and_foreign_ids_look_the_same(store: SqlStore) -> None:
    record = completed("secret", tenant="a")
    await store.save(record)
    rid = record.response["id"]
    for tenant, response_id in (("b", rid), ("a", "resp_missing"), ("", rid)):
        assert await store.get(response_id, tenant) is None
        assert await store.load_chain(response_id, tenant) is None
        assert await store.input_items(response_id, tenant) is None
        assert await store.cancel(response_id, tenant) is None
        assert not await store.delete(response_id, tenant)
        assert [e async for e in store.follow(response_id, tenant)] == []
    assert await store.get(rid, "a") is not None


async def test_input_items_get_ids_once_and_keep_given_ones(store: SqlStore) -> None:
    record = completed("ok", input=TOOL_TURN)
    await store.save(record)
    page = await store.input_items(record.response["id"], "", order="asc")
    ids = [item["id"] for item in page.data]
    assert [i.split("_")[0] for i in ids] == ["msg", "fc", "fco", "rs", "msg"]
    assert ids[-1] == "msg_client"
    assert len(set(ids)) == 5
    again = await store.input_items(record.response["id"], "", order="asc")
    assert [item["id"] for item in again.data] == ids
    chain = await store.load_chain(record.response["id"], "")
    assert [item["id"] for item in chain.items[:5]] == ids
    assert "id" not in record.input_items[0]  # the caller's items are not mutated


async def test_chain_is_every_turn_inputs_then_outputs_in_order(store: SqlStore) -> None:
    previous = None
    expected: list[tuple[str, str]] = []
    for turn in range(5):
        record = completed(
            f"answer {turn}", input=f"question {turn}", previous=previous, tenant="a"
        )
        await store.save(record)
        previous = record.response["id"]
        expected += [("user", f"question {turn}"), ("assistant", f"answer {turn}")]
    chain = await store.load_chain(previous, "a")
    texts = [
        (
            item["role"],
            item["content"] if isinstance(item["content"], str) else item["content"][0]["text"],
        )
        for item in chain.items
    ]
    assert texts == expected
    assert chain.status == "completed"
    assert await store.load_chain(previous, "b") is None


async def test_chain_with_a_deleted_link_is_not_found_rather_than_truncated(
    store: SqlStore,
) -> None:
    first = completed("1")
    second = completed("2", previous=first.response["id"])
    third = completed("3", previous=second.response["id"])
    for record in (first, second, third):
        await store.save(record)
    assert await store.delete(second.response["id"], "")
    assert await store.load_chain(third.response["id"], "") == Chain("completed", None)
    assert await store.get(third.response["id"], "") is not None
    assert len((await store.load_chain(first.response["id"], "")).items) == 2


async def test_chain_never_crosses_tenants(store: SqlStore) -> None:
    theirs = completed("theirs", tenant="b")
    ours = completed("ours", previous=theirs.response["id"], tenant="a")
    await store.save(theirs)
    await store.save(ours)
    assert await store.load_chain(ours.response["id"], "a") == Chain("completed", None)
    assert await store.load_chain(ours.response["id"], "b") is None


async def test_chain_carries_the_status_of_the_response_it_ends_at(store: SqlStore) -> None:
    first = completed("1")
    await store.save(first)
    bg = Background(previous_response_id=first.response["id"])
    assert await store.save(bg.record)
    assert await store.append_events(bg.id, bg.queued)
    queued = await store.load_chain(bg.id, "")
    assert queued.status == "queued"
    assert await store.append_events(bg.id, bg.run())
    assert (await store.load_chain(bg.id, "")).status == "in_progress"
    assert await store.delete(first.response["id"], "")  # still running, and now cut off
    assert await store.load_chain(bg.id, "") == Chain("in_progress", None)
    assert await store.append_events(bg.id, bg.text("done") + bg.finish())
    assert await store.load_chain(bg.id, "") == Chain("completed", None)


async def test_chain_of_many_turns_is_its_own_items_once_in_order(store: SqlStore) -> None:
    previous, expected = None, []
    for turn in range(30):
        record = completed(f"answer {turn}", input=f"question {turn}", previous=previous)
        await store.save(record)
        await store.save(completed(f"other {turn}", input=f"other {turn}"))  # stored between
        previous = record.response["id"]
        expected += [f"question {turn}", f"answer {turn}"]
    chain = await store.load_chain(previous, "")
    texts = [i["content"] if isinstance(i["content"], str) else i["content"][0]["text"]
             for i in chain.items]  # fmt: skip
    assert texts == expected


async def test_input_items_pages_cover_every_item_once_in_order(store: SqlStore) -> None:
    record = completed(
        "ok", input=[{"type": "message", "role": "user", "content": str(i)} for i in range(7)]
    )
    await store.save(record)
    rid = record.response["id"]
    for order in ("asc", "desc"):
        for limit in (1, 2, 3, 7, 100):
            seen: list[str] = []
            after = None
            while True:
                page = await store.input_items(rid, "", limit=limit, order=order, after=after)
                seen += [item["content"] for item in page.data]
                assert page.first_id == (page.data[0]["id"] if page.data else None)
                assert page.last_id == (page.data[-1]["id"] if page.data else None)
                assert len(page.data) <= limit
                if not page.has_more:
                    break
                after = page.last_id
            expected = [str(i) for i in range(7)]
            assert seen == (expected if order == "asc" else expected[::-1]), (order, limit)


async def test_input_items_default_is_newest_first_and_wire_shape(store: SqlStore) -> None:
    record = completed(
        "ok", input=[{"type": "message", "role": "user", "content": str(i)} for i in range(3)]
    )
    await store.save(record)
    page = (await store.input_items(record.response["id"], "", limit=2)).wire()
    assert page["object"] == "list"
    assert [item["content"] for item in page["data"]] == ["2", "1"]
    assert page["has_more"] is True


@pytest.mark.parametrize(
    ("limit", "order", "param"), [(0, "asc", "limit"), (101, "asc", "limit"), (5, "up", "order")]
)
async def test_input_items_rejects_bad_parameters(
    store: SqlStore, limit: int, order: str, param: str
) -> None:
    record = completed("ok")
    await store.save(record)
    with pytest.raises(ApiError) as err:
        await store.input_items(record.response["id"], "", limit=limit, order=order)  # type: ignore[arg-type]
    assert (err.value.status, err.value.param) == (400, param)


async def test_delete_removes_everything_once(store: SqlStore) -> None:
    record = completed("bye", tenant="a")
    await store.save(record)
    rid = record.response["id"]
    assert not await store.delete(rid, "b")
    assert await store.delete(rid, "a")
    assert not await store.delete(rid, "a")
    assert await store.get(rid, "a") is None
    assert await store.input_items(rid, "a") is None
    assert await store.get_item(record.response["output"][0]["id"], "a") is None
    leftovers = await store._driver.read(_count_rows(rid))
    assert leftovers == 0


def _count_rows(response_id: str):
    rows = yield Query(
        "SELECT (SELECT COUNT(*) FROM items WHERE response_id = ?) + (SELECT COUNT(*) FROM events WHERE response_id = ?)",
        (response_id, response_id),
    )
    return rows[0][0]


async def test_get_item_resolves_references_within_the_tenant(store: SqlStore) -> None:
    record = completed("ref me", tenant="a")
    await store.save(record)
    output_id = record.response["output"][0]["id"]
    assert (await store.get_item(output_id, "a"))["content"][0]["text"] == "ref me"
    assert await store.get_item(output_id, "b") is None
    assert await store.get_item("msg_nothing", "a") is None


async def test_a_final_record_is_never_overwritten(store: SqlStore) -> None:
    record = completed("first")
    assert await store.save(record)
    changed = dict(record.response, status="failed", output=[])
    record.response = changed
    assert not await store.save(record)
    assert (await store.get(changed["id"], ""))["status"] == "completed"


async def test_records_survive_reopening(open_store) -> None:
    store = await open_store()
    record = completed("durable")
    await store.save(record)
    await store.close()
    reopened = await open_store()
    assert await reopened.get(record.response["id"], "") == record.response


async def test_schema_is_versioned_and_a_newer_one_is_refused(open_store) -> None:
    store = await open_store()

    def bump():
        rows = yield Query("SELECT version FROM respgate_schema")
        yield Query("UPDATE respgate_schema SET version = ?", (len(MIGRATIONS) + 1,))
        return rows

    assert await store._driver.write(bump()) == [(len(MIGRATIONS),)]
    await store.close()
    with pytest.raises(StoreError, match="newer"):
        await open_store()
