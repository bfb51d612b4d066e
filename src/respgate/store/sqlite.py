"""SQLite backend (the default): `respgate.sqlite3` under a data directory.

WAL mode, `synchronous=FULL` by default (a commit is on disk when `save`
returns; `NORMAL` survives process crashes but not power loss). Writes run
on a dedicated thread with its own connection; writes that arrive while a
commit is in progress are committed together next (group commit, one fsync
for many, each write in its own savepoint);
reads run on a second thread and connection, which WAL lets proceed while a
write is in progress.

One *group* of processes owns a data directory: a single `respgate serve`, or
the workers of `respgate serve --workers N`. The group holds an exclusive
`flock` on `respgate.lock` (`lock_directory`; a worker inherits it from the
supervisor and opens the store with `shared=True`). Each process also holds
the `flock` of its own owner file, `owners/<instance>.lock`, for as long as its
store is open, so a process is dead exactly when its owner file is gone or
unlocked: `recover()` (at start-up, and from any follower whose producer has
gone quiet) fails the queued/in-progress responses of such owners. Writers of
several processes take turns: every write transaction is `BEGIN IMMEDIATE`
(SQLite's one writer at a time) and waits up to `busy_timeout` for the lock.
Followers are woken in-process on every append; with `shared=True` a watcher
also reads the event log's newest rowid every `WAKE_INTERVAL` seconds while
followers wait, and wakes the followers of responses another process appended
to.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from .sql import Program, Query, Row, SqlStore, StoreError, migrate, run

T = TypeVar("T")
log = logging.getLogger(__name__)

DB_FILE = "respgate.sqlite3"
LOCK_FILE = "respgate.lock"
OWNERS_DIR = "owners"
WAKE_INTERVAL = 0.02  # seconds between reads of the event log's newest rowid (shared mode)


@dataclass(slots=True)
class _Job:
    program: Program[Any]
    done: asyncio.Future[Any]
    durable: bool  # a write that must be on disk when committed


class _Lane:
    """A thread that runs the jobs the event loop hands it, with a connection of its own.
    The jobs submitted in one turn of the loop are handed over together at its end; the
    thread takes everything handed over since its last turn (`handle` gets it all) and
    sends the outcomes back to their futures in one call. One queue and one wake-up each
    way, where an executor has a future, a lock and a callback per job.
    The thread starts with the first job (not before a fork) and ends at `close`."""

    def __init__(
        self,
        name: str,
        conn: sqlite3.Connection,
        handle: Callable[[sqlite3.Connection, list[_Job]], list[Any]],
    ) -> None:
        self._name = name
        self._conn = conn
        self._handle = handle
        self._queue: queue.SimpleQueue[list[_Job] | asyncio.Future[None]] = queue.SimpleQueue()
        self._submitted: list[_Job] = []  # this turn's jobs, handed over at its end
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, program: Program[T], durable: bool = True) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        job = _Job(program, loop.create_future(), durable)
        if not self._submitted:
            loop.call_soon(self._hand_over)
        self._submitted.append(job)
        return job.done

    def _hand_over(self) -> None:
        jobs, self._submitted = self._submitted, []
        if jobs and self._closed:  # submitted after `close`: nothing will run them
            _settle([(job, StoreError("The store is closed.")) for job in jobs])
        elif jobs:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put(jobs)

    def _serve(self) -> None:
        closed: asyncio.Future[None] | None = None
        while closed is None:
            jobs: list[_Job] = []
            item = self._queue.get()
            while True:  # everything handed over since the last turn
                if isinstance(item, asyncio.Future):
                    closed = item
                    break
                jobs += item
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if jobs:
                try:
                    outcomes = self._handle(self._conn, jobs)
                except BaseException as exc:  # the commit itself failed: every job did
                    outcomes = [exc] * len(jobs)
                loops: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any]]] = {}
                for job, outcome in zip(jobs, outcomes, strict=True):
                    loops.setdefault(job.done.get_loop(), []).append((job, outcome))
                for loop, settled in loops.items():  # (one, but for a store shared by loops)
                    _send(loop, _settle, settled)
        self._conn.close()
        _send(closed.get_loop(), closed.set_result, None)

    async def close(self) -> None:
        """Run what was submitted, then close the connection and end the thread."""
        self._hand_over()
        self._closed = True
        if self._thread is None:
            self._conn.close()
            return
        closed = asyncio.get_running_loop().create_future()
        self._queue.put(closed)
        await closed
        self._thread.join()


def _send(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
        loop.call_soon_threadsafe(callback, *args)


def _settle(settled: list[tuple[_Job, Any]]) -> None:
    for job, outcome in settled:
        if job.done.done():
            continue  # its caller was cancelled
        if isinstance(outcome, BaseException):
            job.done.set_exception(outcome)
        else:
            job.done.set_result(outcome)


class SqliteDriver:
    def __init__(self, path: Path, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        self._synchronous = synchronous
        self._writer = _connect(path, synchronous)
        self._reader = _connect(path, synchronous)
        self._writes = _Lane("respgate-sqlite-write", self._writer, self._commit)
        self._reads = _Lane("respgate-sqlite-read", self._reader, _read_each)

    async def write(self, program: Program[T], *, durable: bool = True) -> T:
        """Run `program` in a write transaction. Writes that arrive while one is being
        committed are committed together in the next one (group commit: one fsync for
        many saves), each inside its own savepoint, so a failing program rolls back alone.
        A transaction of writes none of which is `durable` commits without its fsync
        (`synchronous = NORMAL`: WAL mode keeps it through a crash of the process)."""
        return await self._writes.submit(program, durable)

    def _commit(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[Any]:
        durable = any(job.durable for job in jobs)
        synchronous = self._synchronous if durable else "NORMAL"
        return _transaction(conn, [job.program for job in jobs], synchronous)

    async def read(self, program: Program[T]) -> T:
        return await self._reads.submit(program)

    async def close(self) -> None:
        await self._writes.close()
        await self._reads.close()


def _read_each(conn: sqlite3.Connection, jobs: list[_Job]) -> list[Any]:
    """Run read programs one after another; each outcome its result or its exception."""
    outcomes: list[Any] = []
    for job in jobs:
        try:
            outcomes.append(run(job.program, lambda q: _execute(conn, q)))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


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


def _transaction(
    conn: sqlite3.Connection, programs: list[Program[Any]], synchronous: str
) -> list[Any]:
    """Run `programs` in one transaction, each in a savepoint, committed with
    `synchronous` (FULL or NORMAL); a program's outcome is its result, or the exception
    that rolled it (alone) back."""
    outcomes: list[Any] = []
    conn.execute(f"PRAGMA synchronous = {synchronous}")
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


def lock_directory(data_dir: str | os.PathLike[str]) -> int:
    """Take the data directory for one group of processes: an exclusive `flock` on
    `respgate.lock`, held while the returned descriptor (or a forked copy of it) is open.
    Owner files left under `owners/` belong to processes of an earlier group, all gone,
    and are removed. `StoreError` when another group holds the directory."""
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
    for stale in (directory / OWNERS_DIR).glob("*.lock"):
        with contextlib.suppress(OSError):
            stale.unlink()
    return lock_fd


def _owner_file(directory: Path, owner: int) -> Path:
    return directory / OWNERS_DIR / f"{owner}.lock"


def _hold_owner(directory: Path, owner: int) -> int:
    """Create and lock this process's owner file; the descriptor keeps it locked."""
    (directory / OWNERS_DIR).mkdir(exist_ok=True)
    fd = os.open(_owner_file(directory, owner), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new and ours: never held elsewhere
    return fd


def _owner_gone(directory: Path, owner: int) -> bool:
    """Whether the process `owner` has died: its owner file is missing or unlocked (a
    dead owner's file is removed here, once)."""
    path = _owner_file(directory, owner)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        with contextlib.suppress(OSError):
            path.unlink()
        return True
    finally:
        os.close(fd)


def _log_mark() -> Program[int]:
    rows = yield Query("SELECT MAX(rowid) FROM events")
    return int(rows[0][0] or 0)


def _appended_since(mark: int) -> Program[tuple[int, list[str] | None]]:
    """The event log's newest rowid and the responses with events after `mark` (None when
    rows at the top were deleted, so rowids may be reused: wake every follower)."""
    newest = yield from _log_mark()
    if newest < mark:
        return newest, None
    if newest == mark:
        return mark, []
    rows = yield Query(
        "SELECT DISTINCT response_id FROM events WHERE rowid > ? AND rowid <= ?", (mark, newest)
    )
    return newest, [response_id for (response_id,) in rows]


class SqliteStore(SqlStore):
    """`ResponseStore` on one SQLite file, for one process or one group of workers."""

    _directory: Path
    _lock_fd: int | None
    _owner_fd: int
    _shared: bool
    _watcher: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        retention: float | None = 30 * 86400,
        poll_interval: float = 1.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        shared: bool = False,
    ) -> SqliteStore:
        """Open (creating on first start) the store under `data_dir`; migrate the schema.
        `shared`: the caller's group already holds the directory (`lock_directory`) and
        other processes of it use the store too."""
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = None if shared else lock_directory(directory)
        instance = secrets.randbits(62)
        owner_fd = _hold_owner(directory, instance)
        driver: SqliteDriver | None = None
        try:
            driver = SqliteDriver(directory / DB_FILE, synchronous)
            await driver.write(migrate())
        except BaseException:
            if driver is not None:
                await driver.close()
            _let_go(directory, instance, owner_fd, lock_fd)
            raise
        store = cls(driver, instance=instance, retention=retention, poll_interval=poll_interval)
        store._directory, store._lock_fd, store._owner_fd = directory, lock_fd, owner_fd
        store._shared = shared
        return store

    def _owner_dead(self, owner: int) -> Program[bool]:
        yield from ()
        return _owner_gone(self._directory, owner)

    def _watch(self) -> None:
        if self._shared and self._watcher is None and not self._closed:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_log())

    async def _watch_log(self) -> None:
        """Wake this process's followers when another process appends to their logs."""
        try:
            mark = await self._driver.read(_log_mark())
            appended: list[str] | None = None  # first round: wake all (appends before the mark)
            while self._notifier.waiting and not self._closed:
                for response_id in self._notifier.waiting if appended is None else appended:
                    self._notifier.notify(response_id)
                await asyncio.sleep(WAKE_INTERVAL)
                mark, appended = await self._driver.read(_appended_since(mark))
        except Exception:  # the followers still poll; this only makes them prompt
            log.exception("watching the SQLite event log failed")
        finally:
            self._watcher = None

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await super().close()

    def _response_field(self, name: str) -> str:
        return f"json_extract(response, '$.{name}')"

    def _metadata_holds(self) -> str:
        return (
            "EXISTS (SELECT 1 FROM json_each(response, '$.metadata')"
            " WHERE json_object(key, value) = ?)"
        )

    async def _release(self) -> None:
        _let_go(self._directory, self.instance, self._owner_fd, self._lock_fd)


def _let_go(directory: Path, owner: int, owner_fd: int, lock_fd: int | None) -> None:
    """Remove and unlock the owner file, then release the directory if we held it."""
    with contextlib.suppress(OSError):
        _owner_file(directory, owner).unlink()
    for fd in (owner_fd, lock_fd):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
