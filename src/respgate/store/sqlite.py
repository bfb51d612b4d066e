"""SQLite backend (the default): `respgate.sqlite3` under a data directory.

WAL mode, `synchronous=FULL` by default (a commit is on disk when `save`
returns; `NORMAL` survives process crashes but not power loss). Writes run
on a dedicated thread with its own connection; writes that arrive while a
commit is in progress are committed together next (group commit, one fsync
for many, each write in its own savepoint);
reads run on a second thread and connection, which WAL lets proceed while a
write is in progress. One process owns a data directory (an exclusive `flock`
on `respgate.lock`), so every queued/in-progress response of another owner was
left by a process that is dead: `recover()` fails them at start-up, and
followers are woken in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from .sql import Program, Query, Row, SqlStore, StoreError, migrate, run

T = TypeVar("T")

DB_FILE = "respgate.sqlite3"
LOCK_FILE = "respgate.lock"


class SqliteDriver:
    def __init__(self, path: Path, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="respgate-sqlite-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="respgate-sqlite-read")
        self._writer = _connect(path, synchronous)
        self._reader = _connect(path, synchronous)
        self._pending: list[tuple[Program[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, program: Program[T]) -> T:
        """Run `program` in a write transaction. Writes that arrive while one is being
        committed are committed together in the next one (group commit: one fsync for
        many saves), each inside its own savepoint, so a failing program rolls back alone."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._pending.append((program, done))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await loop.run_in_executor(
                        self._write_thread, _transaction, self._writer, [p for p, _ in batch]
                    )
                except Exception as exc:  # the commit itself failed: nothing of the batch is stored
                    outcomes = [exc] * len(batch)
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if done.done():
                        continue
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
        finally:
            self._flusher = None

    async def read(self, program: Program[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._read_thread, run, program, lambda q: _execute(self._reader, q)
        )

    async def close(self) -> None:
        for thread, conn in ((self._write_thread, self._writer), (self._read_thread, self._reader)):
            await asyncio.get_running_loop().run_in_executor(thread, conn.close)
            thread.shutdown()


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _execute(conn: sqlite3.Connection, query: Query) -> list[Row]:
    if query.many is not None:
        conn.executemany(query.sql, query.many)
        return []
    return conn.execute(query.sql, query.args).fetchall()


def _transaction(conn: sqlite3.Connection, programs: list[Program[Any]]) -> list[Any]:
    """Run `programs` in one transaction, each in a savepoint; a program's outcome is
    its result, or the exception that rolled it (alone) back."""
    outcomes: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for program in programs:
            conn.execute("SAVEPOINT program")
            try:
                outcomes.append(run(program, lambda q: _execute(conn, q)))
            except Exception as exc:
                conn.execute("ROLLBACK TO program")
                outcomes.append(exc)
            conn.execute("RELEASE program")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return outcomes


class SqliteStore(SqlStore):
    """`ResponseStore` on one SQLite file; one process per data directory."""

    _lock_fd: int

    @classmethod
    async def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        retention: float | None = 30 * 86400,
        poll_interval: float = 1.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> SqliteStore:
        """Open (creating on first start) the store under `data_dir`; migrate the schema."""
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreError(
                f"Another respgate process is using the data directory {directory}."
            ) from None
        driver: SqliteDriver | None = None
        try:
            driver = SqliteDriver(directory / DB_FILE, synchronous)
            await driver.write(migrate())
        except BaseException:
            if driver is not None:
                await driver.close()
            os.close(lock_fd)
            raise
        store = cls(
            driver, instance=secrets.randbits(62), retention=retention, poll_interval=poll_interval
        )
        store._lock_fd = lock_fd
        return store

    def _owner_dead(self, owner: int) -> Program[bool]:
        # We hold the data directory's lock, so any other owner is a process that died.
        yield from ()
        return True

    def _response_field(self, name: str) -> str:
        return f"json_extract(response, '$.{name}')"

    async def _release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)  # releases the flock
