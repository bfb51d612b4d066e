"""Durable response state: `open_store(location)` gives a `ResponseStore`."""

from __future__ import annotations

import os

from .base import ItemPage, ResponseStore, StoredResponse
from .sql import StoreError

__all__ = [
    "ItemPage",
    "ResponseStore",
    "StoreError",
    "StoredResponse",
    "is_database_url",
    "open_store",
]


def is_database_url(location: str | os.PathLike[str]) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


async def open_store(
    location: str | os.PathLike[str],
    *,
    retention: float | None = 30 * 86400,
    poll_interval: float = 1.0,
    recover: bool = True,
) -> ResponseStore:
    """Open the store at `location`: a `postgresql://` URL, else a SQLite data directory.

    `retention`: seconds a final background response and its event log are kept
    (None: forever). With `recover`, responses left queued/in progress by a dead
    process are marked failed before this returns.
    """
    store: ResponseStore
    if is_database_url(location):
        from .postgres import PostgresStore

        store = await PostgresStore.open(
            str(location), retention=retention, poll_interval=poll_interval
        )
    else:
        from .sqlite import SqliteStore

        store = await SqliteStore.open(location, retention=retention, poll_interval=poll_interval)
    if recover:
        await store.recover()
    return store
