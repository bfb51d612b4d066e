"""PostgreSQL backend (`postgresql://` URL): several respgate replicas share one database.

Each process holds a session advisory lock keyed by its instance id on one
dedicated connection, which also LISTENs for event-log notifications. A
process is dead exactly when its lock is free: `recover()` (at start-up, and
from any follower whose producer has gone quiet) takes
`pg_try_advisory_xact_lock(owner)` and fails the responses of owners whose lock
it gets. Appending events sends `NOTIFY` in the same transaction, so followers
on every replica wake on commit; they also poll (`poll_interval`) in case a
notification is missed while the listening connection reconnects. The lock
needs session-level connections: point respgate at PostgreSQL directly or at a
pooler in session mode, not transaction mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from typing import Any, TypeVar

import asyncpg

from .sql import Program, Query, Row, SqlStore, arun, migrate

T = TypeVar("T")
log = logging.getLogger(__name__)

CHANNEL = "respgate_events"
MIGRATION_LOCK = 0x7265737067617465  # "respgate"
# The listening connection tells PostgreSQL to probe its socket, so a crashed
# machine (not only a crashed process) releases its lock within about a minute.
KEEPALIVE = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """`?` placeholders as `$1, $2, …` (no statement here has a literal `?`)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


async def _execute(conn: asyncpg.Connection, query: Query) -> list[Row]:
    sql = _numbered(query.sql)
    if query.many is not None:
        await conn.executemany(sql, query.many)
        return []
    return [tuple(record) for record in await conn.fetch(sql, *query.args)]


class PostgresDriver:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def write(self, program: Program[T], *, durable: bool = True) -> T:
        async with self._pool.acquire() as conn, conn.transaction():
            if not durable:  # the commit does not wait for its WAL flush
                await conn.execute("SET LOCAL synchronous_commit = off")
            return await arun(program, functools.partial(_execute, conn))

    async def read(self, program: Program[T]) -> T:
        async with self._pool.acquire() as conn:
            return await arun(program, functools.partial(_execute, conn))

    async def close(self) -> None:
        await self._pool.close()


class PostgresStore(SqlStore):
    """`ResponseStore` on PostgreSQL via asyncpg."""

    _url: str
    _settings: dict[str, str]
    _listener: asyncpg.Connection | None = None
    _reconnect: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        schema: str | None = None,
        retention: float | None = 30 * 86400,
        poll_interval: float = 1.0,
        min_size: int = 1,
        max_size: int = 10,
    ) -> PostgresStore:
        """Connect, create the tables (in `schema`, if given) and start listening."""
        settings = {"search_path": schema} if schema else {}
        if schema:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            finally:
                await conn.close()
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, server_settings=settings
        )
        driver = PostgresDriver(pool)
        try:
            await driver.write(migrate(Query("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))))
            store = cls(
                driver,
                instance=secrets.randbits(62),
                retention=retention,
                poll_interval=poll_interval,
            )
            store._url, store._settings = url, settings
            await store._listen()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _listen(self) -> None:
        """Open the connection that holds this instance's lock and receives NOTIFYs."""
        conn = await asyncpg.connect(self._url, server_settings={**self._settings, **KEEPALIVE})
        await conn.execute("SELECT pg_advisory_lock($1)", self.instance)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._listener = conn

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._notifier.notify(payload)

    def _on_lost(self, conn: Any) -> None:
        if not self._closed and self._reconnect is None:
            log.warning("lost the PostgreSQL listening connection; reconnecting")
            self._reconnect = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        # Meanwhile others may take us for dead and fail our responses; our producers
        # then see `append_events` return False and stop, so state stays consistent.
        while not self._closed:
            try:
                await self._listen()
                break
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("PostgreSQL reconnect failed: %s", exc)
                await asyncio.sleep(self.poll_interval)
        self._reconnect = None

    def _owner_dead(self, owner: int) -> Program[bool]:
        rows = yield Query("SELECT pg_try_advisory_xact_lock(?)", (owner,))
        return bool(rows[0][0])

    def _notify_query(self, response_id: str) -> Query | None:
        return Query("SELECT pg_notify(?, ?)", (CHANNEL, response_id))

    def _response_field(self, name: str) -> str:
        return f"(response::jsonb ->> '{name}')"

    def _metadata_holds(self) -> str:
        return "(response::jsonb -> 'metadata') @> ?::jsonb"

    async def _release(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()  # releases the advisory lock
