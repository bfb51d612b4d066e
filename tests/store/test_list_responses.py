"""`list_responses` (GET /v1/responses): one tenant's records only (every tenant's for
None), newest first, pages by cursor, filters by model, status and creation time."""

from __future__ import annotations

import pytest

from respgate.protocol.errors import ApiError
from respgate.store.base import ListQuery, ResponseQuery, StoredResponse
from respgate.store.sql import SqlStore
from tests.store.store_helpers import Background, completed


def at(record: StoredResponse, created_at: int) -> StoredResponse:
    record.response["created_at"] = created_at
    return record


async def saved(store: SqlStore) -> dict[str, StoredResponse]:
    records = {
        "a1": at(completed("one", tenant="a", model="echo"), 100),
        "a2": at(completed("two", tenant="a", model="other"), 200),
        "a3": at(completed("three", tenant="a", model="echo"), 300),
        "b1": at(completed("bee", tenant="b", model="echo"), 250),
    }
    for record in records.values():
        assert await store.save(record)
    return records


def ids(page: object) -> list[str]:
    return [r["id"] for r in page.data]  # type: ignore[attr-defined]


async def test_a_tenant_lists_only_its_own_newest_first(store: SqlStore) -> None:
    rs = await saved(store)
    page = await store.list_responses("a")
    assert ids(page) == [rs[k].response["id"] for k in ("a3", "a2", "a1")]
    assert not page.has_more
    assert all("output" not in r and "tenant" not in r for r in page.data)
    assert page.data[0]["usage"]["total_tokens"] == 8
    assert ids(await store.list_responses("c")) == []


async def test_every_tenant_for_none_with_the_tenant_named(store: SqlStore) -> None:
    rs = await saved(store)
    page = await store.list_responses(None)
    assert ids(page) == [rs[k].response["id"] for k in ("a3", "b1", "a2", "a1")]
    assert [r["tenant"] for r in page.data] == ["a", "b", "a", "a"]


async def test_pages_follow_the_cursor_both_ways(store: SqlStore) -> None:
    rs = await saved(store)
    first = await store.list_responses("a", ResponseQuery(limit=2))
    assert ids(first) == [rs["a3"].response["id"], rs["a2"].response["id"]]
    assert first.has_more and first.last_id == rs["a2"].response["id"]
    rest = await store.list_responses("a", ResponseQuery(limit=2, after=first.last_id))
    assert ids(rest) == [rs["a1"].response["id"]] and not rest.has_more
    asc = await store.list_responses("a", ResponseQuery(order="asc", after=rs["a1"].response["id"]))
    assert ids(asc) == [rs["a2"].response["id"], rs["a3"].response["id"]]


async def test_filters_by_model_status_and_date(store: SqlStore) -> None:
    rs = await saved(store)
    echo = await store.list_responses("a", ResponseQuery(model="echo"))
    assert ids(echo) == [rs["a3"].response["id"], rs["a1"].response["id"]]
    window = await store.list_responses("a", ResponseQuery(created_after=200, created_before=300))
    assert ids(window) == [rs["a2"].response["id"]]
    running = Background(tenant="a")
    await store.save(running.record)
    active = await store.list_responses("a", ResponseQuery(status="queued"))
    assert ids(active) == [running.id]
    assert len(ids(await store.list_responses("a", ResponseQuery(status="completed")))) == 3


@pytest.mark.parametrize(
    ("query", "param"), [(ResponseQuery(limit=0), "limit"), (ResponseQuery(order="up"), "order")]
)  # type: ignore[arg-type]
async def test_bad_pages_name_their_param(
    store: SqlStore, query: ResponseQuery, param: str
) -> None:
    with pytest.raises(ApiError) as raised:
        await store.list_responses("a", query)
    assert raised.value.param == param


async def test_conversations_list_by_tenant_and_date(store: SqlStore) -> None:
    made = []
    for n, (tenant, created_at) in enumerate((("a", 100), ("a", 200), ("b", 150))):
        conversation = {"id": f"conv_{n}", "object": "conversation", "created_at": created_at,
                        "metadata": {"n": str(n)}}  # fmt: skip
        await store.create_conversation(conversation, [], tenant)
        made.append(conversation)
    assert (await store.list_conversations("a", ListQuery())).data == [made[1], made[0]]
    everyone = await store.list_conversations(None, ListQuery(order="asc"))
    assert [(c["id"], c["tenant"]) for c in everyone.data] == [
        ("conv_0", "a"), ("conv_2", "b"), ("conv_1", "a")
    ]  # fmt: skip
    window = await store.list_conversations(None, ListQuery(created_after=120, created_before=200))
    assert ids(window) == ["conv_2"]
    first = await store.list_conversations("a", ListQuery(limit=1))
    assert first.has_more
    rest = await store.list_conversations("a", ListQuery(limit=1, after=first.last_id))
    assert ids(rest) == ["conv_0"] and not rest.has_more


async def test_filters_by_surface_and_metadata_with_output_and_metadata_updates(
    store: SqlStore,
) -> None:
    def made(text: str, created_at: int, surface: str | None, **metadata: str) -> StoredResponse:
        record = at(completed(text, tenant="a", metadata=metadata), created_at)
        if surface is not None:
            record.response["surface"] = surface
        return record

    records = [
        made("one", 100, "chat.completions", team="x", odd='it\'s "quoted" é'),
        made("two", 200, None, team="x"),
        made("three", 300, "chat.completions", team="y"),
        made("four", 400, "chat.completions"),
    ]
    for record in records:
        assert await store.save(record)
    rid = [r.response["id"] for r in records]
    chat = ResponseQuery(order="asc", surface="chat.completions")
    assert ids(await store.list_responses("a", chat)) == [rid[0], rid[2], rid[3]]
    assert ids(await store.list_responses("b", chat)) == []
    team_x = ResponseQuery(surface="chat.completions", metadata=(("team", "x"),))
    assert ids(await store.list_responses("a", team_x)) == [rid[0]]
    both = (("team", "x"), ("odd", 'it\'s "quoted" é'))
    assert ids(await store.list_responses("a", ResponseQuery(metadata=both))) == [rid[0]]
    wrong = (("team", "x"), ("odd", "no"))
    assert ids(await store.list_responses("a", ResponseQuery(metadata=wrong))) == []
    # without `with_output` a listed Response has no output; with it, its own
    plain = (await store.list_responses("a", chat)).data
    assert all("output" not in r for r in plain)
    full = (await store.list_responses("a", ResponseQuery(order="asc", with_output=True))).data
    texts = [r["output"][0]["content"][0]["text"] for r in full]
    assert texts == ["one", "two", "three", "four"]

    updated = await store.update_metadata(rid[2], "a", {"team": "x"})
    assert updated is not None and updated["metadata"] == {"team": "x"}
    assert updated["output"][0]["content"][0]["text"] == "three"  # the rest is kept
    assert ids(await store.list_responses("a", team_x)) == [rid[2], rid[0]]
    assert await store.update_metadata(rid[2], "b", {}) is None  # another tenant's
    assert await store.update_metadata("resp_missing", "a", {}) is None
