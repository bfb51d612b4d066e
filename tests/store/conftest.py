"""One store suite, two backends: SQLite always, PostgreSQL when
`RESPGATE_TEST_DATABASE_URL` is set (each test in its own schema, dropped after)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from respgate.store.postgres import PostgresStore
from respgate.store.sql import SqlStore
from respgate.store.sqlite import SqliteStore

OpenStore = Callable[..., Awaitable[SqlStore]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def open_store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[OpenStore]:
    """Opens a store on this test's database; call again to open another process's view of it."""
    opened: list[SqlStore] = []
    kind = request.param
    url = os.environ.get("RESPGATE_TEST_DATABASE_URL")
    if kind == "postgres" and not url:
        pytest.skip("RESPGATE_TEST_DATABASE_URL is not set")
    schema = f"respgate_test_{secrets.token_hex(6)}"

    async def open_(**options: Any) -> SqlStore:
        options.setdefault("poll_interval", 0.05)
        if kind == "postgres":
            options.pop("shared", None)  # replicas always share the database
            store: SqlStore = await PostgresStore.open(url, schema=schema, **options)
        else:
            store = await SqliteStore.open(tmp_path / "data", **options)
        opened.append(store)
        return store

    open_.kind = kind  # type: ignore[attr-defined]
    yield open_
    for store in opened:
        with contextlib.suppress(Exception):
            await store.close()
    if kind == "postgres":
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
async def store(open_store: OpenStore) -> SqlStore:
    return await open_store()
