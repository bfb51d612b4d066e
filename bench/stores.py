"""The stores a storage benchmark runs on, one after the other: SQLite in a temporary data
directory (once per `synchronous` mode), then PostgreSQL in a throwaway schema when a
database URL is given (`--database-url` or `RESPGATE_DATABASE_URL`)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg

from respgate.store.postgres import PostgresStore
from respgate.store.sql import SqlStore
from respgate.store.sqlite import SqliteStore

Measure = Callable[[str, SqlStore], Awaitable[None]]


def add_options(parser: argparse.ArgumentParser) -> None:
    """The chain-shaped workload every storage benchmark takes, and the database URL."""
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--others", type=int, default=2000)
    parser.add_argument("--database-url", default=os.environ.get("RESPGATE_DATABASE_URL"))


async def each_store(
    measure: Measure, database_url: str | None, synchronous: Sequence[str] = ("FULL",)
) -> None:
    """`measure(name, store)` on SQLite (each `synchronous` mode), then on PostgreSQL."""
    for mode in synchronous:
        with tempfile.TemporaryDirectory() as data_dir:
            store = await SqliteStore.open(data_dir, synchronous=mode)
            try:
                await measure(f"sqlite sync={mode}", store)
            finally:
                await store.close()
    if not database_url:
        print("postgresql: skipped (give --database-url or RESPGATE_DATABASE_URL)")
        return
    schema = f"respgate_bench_{secrets.token_hex(4)}"
    store = await PostgresStore.open(database_url, schema=schema)
    try:
        await measure("postgresql", store)
    finally:
        await store.close()
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
