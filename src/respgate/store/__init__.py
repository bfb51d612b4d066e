"""Durable response state: `open_store(location)` gives a `ResponseStore`."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .base import ItemPage, ResponseStore, StoredResponse, UsageTotal
from .sql import StoreError, arun, run, usage_totals

__all__ = [
    "ItemPage",
    "ResponseStore",
    "StoreError",
    "StoredResponse",
    "is_database_url",
    "lock_group",
    "open_store",
    "read_usage",
]


def is_database_url(location: str | os.PathLike[str]) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


async def open_store(
    location: str | os.PathLike[str],
    *,
    retention: float | None = 30 * 86400,
    poll_interval: float = 1.0,
    recover: bool = True,
    shared: bool = False,
) -> ResponseStore:
    """Open the store at `location`: a `postgresql://` URL, else a SQLite data directory.

    `retention`: seconds a final background response and its event log are kept
    (None: forever). With `recover`, responses left queued/in progress by a dead
    process are marked failed before this returns. `shared`: this process is one of a
    group of workers that holds the SQLite directory (`lock_group`); PostgreSQL is
    always shared.
    """
    store: ResponseStore
    if is_database_url(location):
        from .postgres import PostgresStore

        store = await PostgresStore.open(
            str(location), retention=retention, poll_interval=poll_interval
        )
    else:
        from .sqlite import SqliteStore

        store = await SqliteStore.open(
            location, retention=retention, poll_interval=poll_interval, shared=shared
        )
    if recover:
        await store.recover()
    return store


def lock_group(location: str | os.PathLike[str]) -> int | None:
    """Take a SQLite data directory for a group of worker processes (the descriptor holds
    it; forked workers inherit it and open the store with `shared=True`); None for
    PostgreSQL, which needs no lock. `StoreError` when another group holds it."""
    if is_database_url(location):
        return None
    from .sqlite import lock_directory

    return lock_directory(location)


async def read_usage(
    location: str | os.PathLike[str], since: int | None = None, tenant: str | None = None
) -> list[UsageTotal]:
    """Usage per tenant and model, read without opening the store for writing (so it
    works next to a running server: SQLite read-only, PostgreSQL one plain connection).
    Empty if nothing was recorded yet; `StoreError` if there is no store there."""
    if is_database_url(location):
        import asyncpg

        from .postgres import _execute

        try:
            conn = await asyncpg.connect(str(location))
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect: {exc}") from None
        try:
            return await arun(usage_totals(since, tenant), lambda q: _execute(conn, q))
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await conn.close()
    from .sqlite import DB_FILE
    from .sqlite import _execute as execute

    path = Path(location) / DB_FILE
    if not path.exists():
        raise StoreError(f"no respgate store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return run(usage_totals(since, tenant), lambda q: execute(conn, q))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise StoreError(str(exc)) from None
    finally:
        conn.close()
