"""Usage records on both backends; `read_usage` next to an open store (SQLite read-only)."""

from __future__ import annotations

import os

from respgate.store import read_usage
from respgate.store.base import UsageRecord, UsageTotal
from respgate.store.sql import SqlStore

from .conftest import OpenStore


def record(
    response_id: str, tenant: str, model: str, at: int, cost: float | None, n: int = 1
) -> UsageRecord:
    return UsageRecord(
        response_id, tenant, model, "up", f"{model}-upstream", "sse", "completed", at,
        input_tokens=10 * n, cached_tokens=4 * n, output_tokens=3 * n, reasoning_tokens=n,
        cost=cost,
    )  # fmt: skip


async def test_usage_is_summed_per_tenant_and_model(
    store: SqlStore, open_store: OpenStore, tmp_path: object
) -> None:
    await store.record_usage(
        [
            record("r1", "a", "m1", 100, 0.5),
            record("r2", "a", "m1", 200, 0.25, n=2),
            record("r3", "a", "m2", 300, None),
            record("r4", "b", "m1", 400, 1.0),
        ]
    )
    await store.record_usage([record("r1", "a", "m1", 100, 0.5)])  # recorded once only
    assert await store.usage() == [
        UsageTotal("a", "m1", 2, 30, 12, 9, 3, 0.75),
        UsageTotal("a", "m2", 1, 10, 4, 3, 1, None),
        UsageTotal("b", "m1", 1, 10, 4, 3, 1, 1.0),
    ]
    assert await store.usage(since=200, tenant="a") == [
        UsageTotal("a", "m1", 1, 20, 8, 6, 2, 0.25),
        UsageTotal("a", "m2", 1, 10, 4, 3, 1, None),
    ]
    # read from outside while the store is open (what `respgate usage` does)
    if open_store.kind == "postgres":  # type: ignore[attr-defined]
        schema = await store._driver.read(_schema())  # type: ignore[attr-defined]
        location = f"{os.environ['RESPGATE_TEST_DATABASE_URL']}?search_path={schema}"
    else:
        location = str(tmp_path / "data")  # type: ignore[operator]
    assert await read_usage(location, since=300) == [
        UsageTotal("a", "m2", 1, 10, 4, 3, 1, None),
        UsageTotal("b", "m1", 1, 10, 4, 3, 1, 1.0),
    ]


def _schema():  # type: ignore[no-untyped-def]
    from respgate.store.sql import Query

    rows = yield Query("SELECT current_schema()")
    return rows[0][0]
