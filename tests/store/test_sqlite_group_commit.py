"""SQLite group commit: concurrent writes share a transaction, yet each keeps its own outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from respgate.store.sql import Program, Query, StoreError
from respgate.store.sqlite import SqliteDriver


def insert(value: int, fail: bool = False) -> Program[int]:
    yield Query("INSERT INTO t (v) VALUES (?)", (value,))
    if fail:
        raise ValueError(f"program {value} failed after writing")
    rows = yield Query("SELECT count(*) FROM t")
    return rows[0][0]


def count() -> Program[list[int]]:
    rows = yield Query("SELECT v FROM t ORDER BY v")
    return [r[0] for r in rows]


def create() -> Program[None]:
    yield Query("CREATE TABLE t (v INTEGER PRIMARY KEY)")


async def test_a_failing_write_rolls_back_alone(tmp_path: Path) -> None:
    driver = SqliteDriver(tmp_path / "db.sqlite3")
    try:
        await driver.write(create())
        writes = [driver.write(insert(i, fail=i == 3)) for i in range(8)]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert len(failed) == 1 and "program 3 failed" in str(failed[0])
        assert await driver.read(count()) == [0, 1, 2, 4, 5, 6, 7]
        # a duplicate key fails that write only, whatever batch it lands in
        with pytest.raises(Exception, match="UNIQUE"):
            await asyncio.gather(driver.write(insert(5)), driver.write(insert(9)))
        assert await driver.read(count()) == [0, 1, 2, 4, 5, 6, 7, 9]
    finally:
        await driver.close()


async def test_a_transaction_is_flushed_to_disk_when_one_of_its_writes_is_durable(
    tmp_path: Path,
) -> None:
    driver = SqliteDriver(tmp_path / "db.sqlite3")
    modes: list[str] = []

    def seen(statement: str) -> None:
        if statement.startswith("PRAGMA synchronous"):
            modes.append(statement.rsplit(" ", 1)[1])

    driver._writer.set_trace_callback(seen)
    try:
        await driver.write(create())
        await driver.write(insert(1), durable=False)
        await asyncio.gather(driver.write(insert(2), durable=False), driver.write(insert(3)))
        await asyncio.gather(
            driver.write(insert(4), durable=False), driver.write(insert(5), durable=False)
        )
        # a transaction per batch (writes started together share one): FULL once one
        # of its writes is durable
        assert modes == ["FULL", "NORMAL", "FULL", "NORMAL"]
        # committed either way: another connection reads every row
        assert await driver.read(count()) == [1, 2, 3, 4, 5]
    finally:
        await driver.close()


async def test_a_failed_commit_fails_its_batch_and_the_lane_goes_on(tmp_path: Path) -> None:
    driver = SqliteDriver(tmp_path / "db.sqlite3")
    commit = driver._writes._handle
    failures = iter([OSError("disk I/O error")])

    def failing_once(conn: object, jobs: list) -> list:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return commit(conn, jobs)

    try:
        await driver.write(create())
        driver._writes._handle = failing_once  # type: ignore[method-assign]
        batch = [driver.write(insert(i)) for i in range(3)]
        outcomes = await asyncio.gather(*batch, return_exceptions=True)
        assert [type(o) for o in outcomes] == [OSError] * 3  # one commit, every write of it
        # the thread is still there: the next writes commit
        assert await driver.write(insert(7)) == 1
        assert await driver.read(count()) == [7]
    finally:
        await driver.close()


async def test_a_write_after_close_fails_instead_of_waiting(tmp_path: Path) -> None:
    driver = SqliteDriver(tmp_path / "db.sqlite3")
    await driver.write(create())
    await driver.close()
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(driver.write(insert(1)), 5)
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(driver.read(count()), 5)
