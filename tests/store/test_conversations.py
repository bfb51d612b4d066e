"""Conversations in the store (the SQL programs), every backend: records, items in order,
pagination, duplicate ids, concurrent appends, tenant scoping, deletion semantics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from respgate.conversations import stored_items
from respgate.protocol.errors import ApiError
from respgate.protocol.ids import new_id
from respgate.store.sql import SqlStore
from tests.store.store_helpers import completed


def conversation(**metadata: str) -> dict[str, Any]:
    return {
        "id": new_id("conversation"),
        "object": "conversation",
        "created_at": 1_700_000_000,
        "metadata": metadata,
    }


def messages(*texts: str) -> list[dict[str, Any]]:
    return stored_items([{"type": "message", "role": "user", "content": t} for t in texts])


def texts(items: list[dict[str, Any]]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


async def test_create_get_update_delete(store: SqlStore) -> None:
    conv = conversation(topic="x")
    await store.create_conversation(conv, messages("a", "b"), "t")
    assert await store.get_conversation(conv["id"], "t") == conv
    assert texts(await store.conversation_items(conv["id"], "t")) == ["a", "b"]
    updated = await store.update_conversation(conv["id"], "t", {"topic": "y", "n": "1"})
    assert updated == {**conv, "metadata": {"topic": "y", "n": "1"}}
    assert await store.get_conversation(conv["id"], "t") == updated
    assert await store.delete_conversation(conv["id"], "t")
    assert await store.get_conversation(conv["id"], "t") is None
    assert await store.conversation_items(conv["id"], "t") is None
    assert not await store.delete_conversation(conv["id"], "t")


async def test_an_empty_conversation_has_an_empty_list_not_none(store: SqlStore) -> None:
    conv = conversation()
    await store.create_conversation(conv, [], "t")
    assert await store.conversation_items(conv["id"], "t") == []
    page = await store.list_conversation_items(conv["id"], "t")
    assert page is not None and page.data == [] and page.has_more is False


async def test_another_tenants_conversation_is_missing_everywhere(store: SqlStore) -> None:
    conv = conversation()
    items = messages("secret")
    await store.create_conversation(conv, items, "a")
    cid, item_id = conv["id"], items[0]["id"]
    for tenant, conversation_id in (("b", cid), ("", cid), ("a", "conv_missing")):
        assert await store.get_conversation(conversation_id, tenant) is None
        assert await store.update_conversation(conversation_id, tenant, {"k": "v"}) is None
        assert await store.conversation_items(conversation_id, tenant) is None
        assert await store.list_conversation_items(conversation_id, tenant) is None
        assert await store.add_conversation_items(conversation_id, tenant, messages("x")) is None
        assert await store.get_conversation_item(conversation_id, item_id, tenant) == (None, None)
        assert await store.delete_conversation_item(conversation_id, item_id, tenant) == (
            None,
            False,
        )
        assert not await store.delete_conversation(conversation_id, tenant)
    # untouched by all of the above
    assert await store.get_conversation(cid, "a") == conv
    assert texts(await store.conversation_items(cid, "a")) == ["secret"]


async def test_appends_keep_order_and_return_what_was_added(store: SqlStore) -> None:
    conv = conversation()
    await store.create_conversation(conv, messages("0"), "")
    added = await store.add_conversation_items(conv["id"], "", messages("1", "2"))
    assert texts(added) == ["1", "2"]
    await store.add_conversation_items(conv["id"], "", messages("3"))
    assert texts(await store.conversation_items(conv["id"], "")) == ["0", "1", "2", "3"]


async def test_a_duplicate_id_is_a_400_naming_it_and_nothing_is_added(store: SqlStore) -> None:
    conv = conversation()
    first = messages("a")
    await store.create_conversation(conv, first, "")
    again = messages("b", "c")
    again[1]["id"] = first[0]["id"]
    with pytest.raises(ApiError) as err:
        await store.add_conversation_items(conv["id"], "", again)
    assert err.value.status == 400 and err.value.param == "items[1].id"
    twice = messages("d", "e")
    twice[1]["id"] = twice[0]["id"]
    with pytest.raises(ApiError) as err:
        await store.add_conversation_items(conv["id"], "", twice)
    assert err.value.param == "items[1].id"
    assert texts(await store.conversation_items(conv["id"], "")) == ["a"]
    # a response's turn leaves known items out instead
    added = await store.add_conversation_items(conv["id"], "", again, skip_known=True)
    assert texts(added) == ["b"]
    assert texts(await store.conversation_items(conv["id"], "")) == ["a", "b"]


async def test_a_duplicate_id_in_a_new_conversation_creates_nothing(store: SqlStore) -> None:
    conv = conversation()
    items = messages("a", "b")
    items[1]["id"] = items[0]["id"]
    with pytest.raises(ApiError):
        await store.create_conversation(conv, items, "")
    assert await store.get_conversation(conv["id"], "") is None


async def test_concurrent_appends_all_land_once_each(open_store) -> None:
    first, second = (
        await open_store(),
        await open_store() if open_store.kind == "postgres" else None,
    )
    conv = conversation()
    await first.create_conversation(conv, [], "")
    stores = [first, second or first]
    batches = [messages(f"{n}.0", f"{n}.1") for n in range(12)]
    await asyncio.gather(
        *(
            stores[n % 2].add_conversation_items(conv["id"], "", batch)
            for n, batch in enumerate(batches)
        )
    )
    got = texts(await first.conversation_items(conv["id"], ""))
    assert sorted(got) == sorted(t for batch in batches for t in texts(batch))
    for n in range(12):  # each batch stays together, in its order
        assert got.index(f"{n}.1") == got.index(f"{n}.0") + 1


async def test_pages_cover_every_item_once_in_both_orders(store: SqlStore) -> None:
    conv = conversation()
    await store.create_conversation(conv, messages(*(str(i) for i in range(7))), "")
    expected = [str(i) for i in range(7)]
    for order in ("asc", "desc"):
        for limit in (1, 2, 3, 7, 100):
            seen: list[str] = []
            after = None
            while True:
                page = await store.list_conversation_items(
                    conv["id"], "", limit=limit, order=order, after=after
                )
                seen += texts(page.data)
                assert page.first_id == (page.data[0]["id"] if page.data else None)
                assert page.last_id == (page.data[-1]["id"] if page.data else None)
                assert len(page.data) <= limit
                if not page.has_more:
                    break
                after = page.last_id
            assert seen == (expected if order == "asc" else expected[::-1]), (order, limit)


@pytest.mark.parametrize(("limit", "order", "param"), [(0, "asc", "limit"), (101, "asc", "limit"),
                                                      (5, "up", "order")])  # fmt: skip
async def test_list_rejects_bad_parameters(
    store: SqlStore, limit: int, order: str, param: str
) -> None:
    with pytest.raises(ApiError) as err:
        await store.list_conversation_items("conv_x", "", limit=limit, order=order)  # type: ignore[arg-type]
    assert err.value.status == 400 and err.value.param == param


async def test_get_and_delete_one_item(store: SqlStore) -> None:
    conv = conversation()
    items = messages("a", "b", "c")
    await store.create_conversation(conv, items, "")
    got_conv, item = await store.get_conversation_item(conv["id"], items[1]["id"], "")
    assert got_conv == conv and item == items[1]
    assert await store.get_conversation_item(conv["id"], "msg_missing", "") == (conv, None)
    assert await store.delete_conversation_item(conv["id"], items[1]["id"], "") == (conv, True)
    assert await store.delete_conversation_item(conv["id"], items[1]["id"], "") == (conv, False)
    assert texts(await store.conversation_items(conv["id"], "")) == ["a", "c"]
    # the deleted id may be added again, at the end
    await store.add_conversation_items(conv["id"], "", [items[1]])
    assert texts(await store.conversation_items(conv["id"], "")) == ["a", "c", "b"]


async def test_conversations_and_responses_are_deleted_apart(store: SqlStore) -> None:
    record = completed("answer", tenant="t")
    await store.save(record)
    conv = conversation()
    await store.create_conversation(conv, stored_items(record.response["output"]), "t")
    assert await store.delete_conversation(conv["id"], "t")
    assert await store.get(record.response["id"], "t") is not None
    other = conversation()
    await store.create_conversation(other, stored_items(record.response["output"]), "t")
    assert await store.delete(record.response["id"], "t")
    assert texts(await store.conversation_items(other["id"], "t")) == ["answer"]


async def test_conversations_survive_reopening(open_store) -> None:
    store = await open_store()
    conv = conversation(k="v")
    await store.create_conversation(conv, messages("kept"), "")
    await store.close()
    reopened = await open_store()
    assert await reopened.get_conversation(conv["id"], "") == conv
    assert texts(await reopened.conversation_items(conv["id"], "")) == ["kept"]


async def test_a_turn_with_more_items_than_one_lookup_holds(store: SqlStore) -> None:
    conv = conversation()
    await store.create_conversation(conv, messages("first"), "")
    many = messages(*(str(i) for i in range(1203)))
    many[1100]["id"] = (await store.conversation_items(conv["id"], ""))[0]["id"]
    added = await store.add_conversation_items(conv["id"], "", many, skip_known=True)
    assert len(added) == 1202 and "1100" not in texts(added)
    assert len(await store.conversation_items(conv["id"], "")) == 1203


async def test_item_references_find_conversation_items_of_the_tenant(store: SqlStore) -> None:
    conv = conversation()
    items = messages("referenced")
    await store.create_conversation(conv, items, "a")
    assert await store.get_item(items[0]["id"], "a") == items[0]
    assert await store.get_item(items[0]["id"], "b") is None


async def test_a_store_of_the_previous_schema_is_migrated_keeping_its_responses(open_store) -> None:
    from respgate.store.sql import MIGRATIONS, Query

    store = await open_store()
    record = completed("before conversations", tenant="t")
    await store.save(record)

    version = next(
        v for v, m in enumerate(MIGRATIONS) if any("TABLE conversations " in q for q in m)
    )
    tables = [q.split()[2] for m in MIGRATIONS[version:] for q in m if q.startswith("CREATE TABLE")]

    def downgrade():  # the schema as the version before conversations left it
        for table in reversed(tables):
            yield Query(f"DROP TABLE {table}")
        yield Query("UPDATE respgate_schema SET version = ?", (version,))

    await store._driver.write(downgrade())
    await store.close()
    store = await open_store()
    assert (await store.get(record.response["id"], "t"))["status"] == "completed"
    conv = conversation()
    await store.create_conversation(conv, messages("after"), "t")
    assert texts(await store.conversation_items(conv["id"], "t")) == ["after"]
