"""The SQL both backends share, written once as sans-IO *programs*.

A program is a generator that yields `Query` values and receives each query's
rows back; its return value is the operation's result. A backend's `Driver`
runs a write program inside one transaction (SQLite: all of it in the
database thread, one hop; PostgreSQL: on one pooled connection) and a read
program without one. So every operation below exists once, and the two
backends differ only in DDL, placeholders, and how they tell that another
process is dead (`SqlStore._owner_dead`) or wake other processes'
followers (`SqlStore._notify_query`).

Tables (see the migrations in `sqlite.py` / `postgres.py`):

- `responses`: one row per response; `response` is the Response object as
  JSON *without* `output` (the output items live in `items`), `owner` is the
  instance id of the process generating it (only while queued/in progress).
- `items`: input (`kind` 0) and output (`kind` 1) items in order.
- `events`: the background event log, `(response_id, sequence_number)`.
- `usage_records`: one row per finished response (stored or not) with its
  tokens and cost; kept when the response is deleted or expires (accounting).
- `conversations`: one row per conversation (Conversations API), its metadata,
  and `next_position`, the position its next item gets (updating it locks the row,
  so concurrent appends to one conversation take turns).
- `conversation_items`: a conversation's items in order, each with its unique id.

`items` and `events` rows are deleted with their response (ON DELETE CASCADE), and
`conversation_items` rows with their conversation. A conversation's items are its
own copies: deleting a response leaves them, deleting a conversation leaves its
responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import operator
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import orjson

from ..protocol.builder import ResponseBuilder
from ..protocol.errors import invalid, quote
from ..protocol.lifecycle import TERMINAL_EVENTS
from ..protocol.signals import Failure
from .base import (
    ACTIVE_STATUSES,
    ORPHANED_ERROR,
    Chain,
    ItemPage,
    ListQuery,
    ResponseQuery,
    StoredResponse,
    UsageRecord,
    UsageTotal,
    check_page,
    with_item_ids,
)

T = TypeVar("T")
Row = tuple[Any, ...]
log = logging.getLogger(__name__)

INPUT, OUTPUT = 0, 1
_ACTIVE = "('queued', 'in_progress')"
_EVENT_BATCH = 500
_ID_BATCH = 500  # item ids looked up per statement


@dataclass(frozen=True, slots=True)
class Query:
    """One statement; with `many`, executed once per row of arguments (returns no rows)."""

    sql: str
    args: Sequence[Any] = ()
    many: Sequence[Sequence[Any]] | None = None


Program = Generator[Query, list[Row], T]


class Driver(Protocol):
    async def write(self, program: Program[T], *, durable: bool = True) -> T:
        """Run `program` in one transaction; committed when this returns (on disk unless
        `durable=False`, `ResponseStore.save`)."""

    async def read(self, program: Program[T]) -> T: ...

    async def close(self) -> None: ...


class StoreError(RuntimeError):
    """The store cannot be opened or used (not a client error)."""


# The schema, shared by both backends: SQLite reads these type names by affinity
# (BIGINT/SMALLINT -> INTEGER, BOOLEAN -> NUMERIC). Append migrations; never edit one.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE responses ("
        " id TEXT PRIMARY KEY,"
        " tenant TEXT NOT NULL,"
        " previous_response_id TEXT,"
        " status TEXT NOT NULL,"
        " background BOOLEAN NOT NULL,"
        " owner BIGINT,"
        " response TEXT NOT NULL,"
        " created_at BIGINT NOT NULL,"
        " updated_at BIGINT NOT NULL,"
        " expires_at BIGINT)",
        f"CREATE INDEX responses_active ON responses (owner) WHERE status IN {_ACTIVE}",
        "CREATE INDEX responses_expires ON responses (expires_at) WHERE expires_at IS NOT NULL",
        "CREATE TABLE items ("
        " response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,"
        " kind SMALLINT NOT NULL,"
        " position INTEGER NOT NULL,"
        " item_id TEXT,"
        " data TEXT NOT NULL,"
        " PRIMARY KEY (response_id, kind, position))",
        "CREATE INDEX items_item_id ON items (item_id)",
        "CREATE TABLE events ("
        " response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,"
        " sequence_number INTEGER NOT NULL,"
        " data TEXT NOT NULL,"
        " PRIMARY KEY (response_id, sequence_number))",
    ],
    [
        "CREATE TABLE usage_records ("
        " response_id TEXT PRIMARY KEY,"
        " tenant TEXT NOT NULL,"
        " model TEXT NOT NULL,"
        " provider TEXT,"
        " upstream_model TEXT,"
        " transport TEXT NOT NULL,"
        " status TEXT,"
        " created_at BIGINT NOT NULL,"
        " input_tokens BIGINT NOT NULL,"
        " cached_tokens BIGINT NOT NULL,"
        " output_tokens BIGINT NOT NULL,"
        " reasoning_tokens BIGINT NOT NULL,"
        " cost DOUBLE PRECISION)",
        "CREATE INDEX usage_records_created ON usage_records (created_at)",
    ],
    [
        "CREATE TABLE conversations ("
        " id TEXT PRIMARY KEY,"
        " tenant TEXT NOT NULL,"
        " metadata TEXT NOT NULL,"
        " created_at BIGINT NOT NULL,"
        " updated_at BIGINT NOT NULL,"
        " next_position BIGINT NOT NULL)",
        "CREATE TABLE conversation_items ("
        " conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,"
        " position BIGINT NOT NULL,"
        " item_id TEXT NOT NULL,"
        " data TEXT NOT NULL,"
        " PRIMARY KEY (conversation_id, position))",
        # unique per conversation; item_id first so `item_reference` finds it by id alone
        "CREATE UNIQUE INDEX conversation_items_item_id"
        " ON conversation_items (item_id, conversation_id)",
    ],
    [  # gateway secrets shared by every process on this store (the seal key)
        "CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
]


def migrate(lock: Query | None = None) -> Program[int]:
    """Bring the schema to the newest version (in the caller's transaction); returns it."""
    if lock is not None:
        yield lock
    yield Query("CREATE TABLE IF NOT EXISTS respgate_schema (version INTEGER NOT NULL)")
    rows = yield Query("SELECT version FROM respgate_schema")
    version = rows[0][0] if rows else 0
    if version > len(MIGRATIONS):
        raise StoreError(f"The database schema (version {version}) is newer than this respgate.")
    for migration in MIGRATIONS[version:]:
        for statement in migration:
            yield Query(statement)
    if not rows:
        yield Query("INSERT INTO respgate_schema (version) VALUES (?)", (len(MIGRATIONS),))
    elif version < len(MIGRATIONS):
        yield Query("UPDATE respgate_schema SET version = ?", (len(MIGRATIONS),))
    return len(MIGRATIONS)


def run(program: Program[T], execute: Callable[[Query], list[Row]]) -> T:
    """Drive `program`, executing each query it yields with `execute`."""
    try:
        query = next(program)
        while True:
            query = program.send(execute(query))
    except StopIteration as stop:
        return stop.value


async def arun(program: Program[T], execute: Callable[[Query], Awaitable[list[Row]]]) -> T:
    """`run` for an asynchronous `execute`."""
    try:
        query = next(program)
        while True:
            query = program.send(await execute(query))
    except StopIteration as stop:
        return stop.value


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


loads = orjson.loads


class Notifier:
    """In-process wake-ups for followers, keyed by response id."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @property
    def waiting(self) -> list[str]:
        """The responses someone is waiting on."""
        return list(self._waiters)

    def notify(self, response_id: str) -> None:
        for event in self._waiters.get(response_id, ()):
            event.set()

    @contextlib.contextmanager
    def subscribe(self, response_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        waiters = self._waiters.setdefault(response_id, set())
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                del self._waiters[response_id]


class SqlStore:
    """`ResponseStore` over a `Driver`. Subclasses open the driver."""

    def __init__(
        self,
        driver: Driver,
        *,
        instance: int,
        retention: float | None,
        poll_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._driver = driver
        self.instance = instance  # this process's id in `responses.owner`
        self.retention = retention  # seconds a final background response is kept
        self.poll_interval = poll_interval
        self._clock = clock
        self._notifier = Notifier()
        self._last_recover = 0.0
        self._closed = False

    # ------------------------------------------------------------ backend hooks

    def _owner_dead(self, owner: int) -> Program[bool]:
        """Whether the process `owner` (not this one) is gone."""
        raise NotImplementedError

    def _notify_query(self, response_id: str) -> Query | None:
        """A statement that wakes other processes' followers, if the backend has one."""
        return None

    def _watch(self) -> None:
        """Called before a follower waits: a backend without `_notify_query` that shares
        its store with other processes starts watching their appends here."""

    def _response_field(self, name: str) -> str:
        """An SQL expression for the top-level string field `name` of `responses.response`."""
        raise NotImplementedError

    def _metadata_holds(self) -> str:
        """An SQL condition with one placeholder, a JSON object `{"key": "value"}`: true when
        `responses.response`'s `metadata` holds that pair."""
        raise NotImplementedError

    # ------------------------------------------------------------ public API

    async def save(self, record: StoredResponse, *, durable: bool = True) -> bool:
        # Serialized here, once: the program may run on another thread, and strings are
        # what it writes; the caller may go on changing its dicts.
        inputs = _serialized(with_item_ids(record.input_items))
        program = self._save(_Row.of(record.response), inputs, record.tenant)
        return await self._driver.write(program, durable=durable)

    async def get(self, response_id: str, tenant: str) -> dict[str, Any] | None:
        return await self._driver.read(self._get(response_id, tenant))

    async def load_chain(self, response_id: str, tenant: str) -> Chain | None:
        return await self._driver.read(self._load_chain(response_id, tenant))

    async def get_item(self, item_id: str, tenant: str) -> dict[str, Any] | None:
        return await self._driver.read(self._get_item(item_id, tenant))

    async def secret(self, name: str, candidate: str) -> str:
        return await self._driver.write(_secret(name, candidate))

    async def input_items(
        self,
        response_id: str,
        tenant: str,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        check_page(limit, order)
        return await self._driver.read(self._input_items(response_id, tenant, limit, order, after))

    async def list_responses(
        self, tenant: str | None, query: ResponseQuery | None = None
    ) -> ItemPage:
        query = query or ResponseQuery()
        check_page(query.limit, query.order)
        return await self._driver.read(self._list_responses(tenant, query))

    async def update_metadata(
        self, response_id: str, tenant: str, metadata: dict[str, str]
    ) -> dict[str, Any] | None:
        return await self._driver.write(self._update_metadata(response_id, tenant, metadata))

    async def list_conversations(self, tenant: str | None, query: ListQuery) -> ItemPage:
        check_page(query.limit, query.order)
        return await self._driver.read(self._list_conversations(tenant, query))

    async def delete(self, response_id: str, tenant: str) -> bool:
        deleted = await self._driver.write(self._delete(response_id, tenant))
        self._notifier.notify(response_id)
        return deleted

    async def append_events(self, response_id: str, events: Sequence[dict[str, Any]]) -> bool:
        if not events:
            return True
        snapshot = next((e["response"] for e in reversed(events) if "response" in e), None)
        row = None if snapshot is None else _Row.of(snapshot)
        program = self._append_events(response_id, row, _logged(events))  # serialized here
        ok = await self._driver.write(program)
        self._notifier.notify(response_id)
        return ok

    async def follow(
        self, response_id: str, tenant: str, starting_after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        after = -1 if starting_after is None else starting_after
        while True:
            with self._notifier.subscribe(response_id) as woken:
                found = await self._driver.read(self._read_events(response_id, tenant, after))
                if found is None:
                    return
                status, owner, rows = found
                for sequence_number, data in rows:
                    event = loads(data)
                    yield event
                    after = sequence_number
                    if event["type"] in TERMINAL_EVENTS:
                        return
                if status not in ACTIVE_STATUSES and len(rows) < _EVENT_BATCH:
                    return  # final and fully replayed (a log without a terminal event ends here too)
                if rows:
                    continue
                self._watch()
                try:
                    await asyncio.wait_for(woken.wait(), self.poll_interval)
                except TimeoutError:
                    if owner != self.instance:
                        await self._recover_now()

    async def cancel(self, response_id: str, tenant: str) -> dict[str, Any] | None:
        response = await self._driver.write(self._cancel(response_id, tenant))
        self._notifier.notify(response_id)
        return response

    async def recover(self) -> list[str]:
        failed = await self._driver.write(self._recover())
        for response_id in failed:
            self._notifier.notify(response_id)
        return failed

    async def expire(self) -> int:
        return await self._driver.write(self._expire())

    async def record_usage(self, records: Sequence[UsageRecord]) -> None:
        if records:
            await self._driver.write(record_usage(list(records)))

    async def usage(self, since: int | None = None, tenant: str | None = None) -> list[UsageTotal]:
        return await self._driver.read(usage_totals(since, tenant))

    # ------------------------------------------------------------ conversations

    async def create_conversation(
        self, conversation: dict[str, Any], items: Sequence[dict[str, Any]], tenant: str
    ) -> None:
        program = self._create_conversation(_copy(conversation), _copy(list(items)), tenant)
        await self._driver.write(program)

    async def get_conversation(self, conversation_id: str, tenant: str) -> dict[str, Any] | None:
        return await self._driver.read(self._get_conversation(conversation_id, tenant))

    async def update_conversation(
        self, conversation_id: str, tenant: str, metadata: dict[str, str]
    ) -> dict[str, Any] | None:
        program = self._update_conversation(conversation_id, tenant, dict(metadata))
        return await self._driver.write(program)

    async def delete_conversation(self, conversation_id: str, tenant: str) -> bool:
        return await self._driver.write(self._delete_conversation(conversation_id, tenant))

    async def add_conversation_items(
        self,
        conversation_id: str,
        tenant: str,
        items: Sequence[dict[str, Any]],
        *,
        skip_known: bool = False,
    ) -> list[dict[str, Any]] | None:
        program = self._add_conversation_items(
            conversation_id, tenant, _copy(list(items)), skip_known
        )
        return await self._driver.write(program)

    async def conversation_items(
        self, conversation_id: str, tenant: str
    ) -> list[dict[str, Any]] | None:
        return await self._driver.read(self._conversation_items(conversation_id, tenant))

    async def list_conversation_items(
        self,
        conversation_id: str,
        tenant: str,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        check_page(limit, order)
        program = self._list_conversation_items(conversation_id, tenant, limit, order, after)
        return await self._driver.read(program)

    async def get_conversation_item(
        self, conversation_id: str, item_id: str, tenant: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        return await self._driver.read(
            self._get_conversation_item(conversation_id, item_id, tenant)
        )

    async def delete_conversation_item(
        self, conversation_id: str, item_id: str, tenant: str
    ) -> tuple[dict[str, Any] | None, bool]:
        program = self._delete_conversation_item(conversation_id, item_id, tenant)
        return await self._driver.write(program)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._driver.close()
            await self._release()

    async def _release(self) -> None:
        """Backend hook: let go of what marks this process as alive."""

    # ------------------------------------------------------------ helpers

    def _now(self) -> int:
        return int(self._clock())

    async def _recover_now(self) -> None:
        """`recover`, at most once per poll interval however many followers wait."""
        now = self._clock()
        if now - self._last_recover >= self.poll_interval:
            self._last_recover = now
            await self.recover()

    # ------------------------------------------------------------ programs: writes

    def _save(self, row: _Row, inputs: list[Item], tenant: str) -> Program[bool]:
        if (yield from self._update_active(row)):
            return True
        created_at = int(row.created_at or self._now())
        expires_at = (
            created_at + int(self.retention)
            if row.background and self.retention is not None
            else None
        )
        rows = yield Query(
            "INSERT INTO responses (id, tenant, previous_response_id, status, background, owner,"
            " response, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            (
                row.id,
                tenant,
                row.previous_response_id,
                row.status,
                row.background,
                self.instance if row.status in ACTIVE_STATUSES else None,
                row.body,
                created_at,
                self._now(),
                expires_at,
            ),
        )
        if not rows:
            return False  # exists and is final
        yield from self._insert_items(row.id, INPUT, inputs)
        yield from self._insert_items(row.id, OUTPUT, row.output)
        return True

    def _update_active(self, row: _Row) -> Program[bool]:
        """Update a queued/in-progress record from a Response snapshot; False if none."""
        rows = yield Query(
            f"UPDATE responses SET status = ?, response = ?, owner = ?, updated_at = ?"
            f" WHERE id = ? AND status IN {_ACTIVE} RETURNING id",
            (
                row.status,
                row.body,
                self.instance if row.status in ACTIVE_STATUSES else None,
                self._now(),
                row.id,
            ),
        )
        if not rows:
            return False
        if row.output or row.status not in ACTIVE_STATUSES:
            yield Query("DELETE FROM items WHERE response_id = ? AND kind = ?", (row.id, OUTPUT))
            yield from self._insert_items(row.id, OUTPUT, row.output)
        return True

    def _insert_items(self, response_id: str, kind: int, items: Sequence[Item]) -> Program[None]:
        if items:
            yield Query(
                "INSERT INTO items (response_id, kind, position, item_id, data) VALUES (?, ?, ?, ?, ?)",
                many=[
                    (response_id, kind, i, item_id, data) for i, (item_id, data) in enumerate(items)
                ],
            )

    def _append_events(
        self, response_id: str, snapshot: _Row | None, events: list[LoggedEvent]
    ) -> Program[bool]:
        """Append serialized `(sequence_number, event)`s; `snapshot`: the newest Response
        among them, if any, which becomes the record."""
        if snapshot is not None:
            ok = yield from self._update_active(snapshot)
        else:
            ok = bool(
                (
                    yield Query(
                        f"UPDATE responses SET updated_at = ? WHERE id = ? AND status IN {_ACTIVE} RETURNING id",
                        (self._now(), response_id),
                    )
                )
            )
        if not ok:
            return False
        yield from self._log_events(response_id, events)
        return True

    def _log_events(self, response_id: str, events: list[LoggedEvent]) -> Program[None]:
        """Add serialized events to a response's log and wake its followers."""
        yield Query(
            "INSERT INTO events (response_id, sequence_number, data) VALUES (?, ?, ?)",
            many=[(response_id, sequence_number, data) for sequence_number, data in events],
        )
        notify = self._notify_query(response_id)
        if notify is not None:
            yield notify

    def _cancel(self, response_id: str, tenant: str) -> Program[dict[str, Any] | None]:
        rows = yield Query(
            "SELECT status, background FROM responses WHERE id = ? AND tenant = ?",
            (response_id, tenant),
        )
        if not rows:
            return None
        status, background = rows[0]
        if not background:
            raise invalid("Only responses created with `background: true` can be cancelled.", None)
        if status in ACTIVE_STATUSES:
            if (yield from self._end(response_id, "cancelled", CANCELLED)):
                status = "cancelled"
            else:  # it ended between the two statements (PostgreSQL, another process)
                rows = yield Query("SELECT status FROM responses WHERE id = ?", (response_id,))
                if not rows:
                    return None
                status = rows[0][0]
        if status != "cancelled":
            raise invalid(f"Cannot cancel a {status} response.", None)
        return (yield from self._get(response_id, tenant))

    def _recover(self) -> Program[list[str]]:
        owners = yield Query(f"SELECT DISTINCT owner FROM responses WHERE status IN {_ACTIVE}")
        failed: list[str] = []
        for (owner,) in owners:
            if owner == self.instance or not (yield from self._owner_dead(owner)):
                continue
            rows = yield Query(
                f"SELECT id FROM responses WHERE owner = ? AND status IN {_ACTIVE}", (owner,)
            )
            for (response_id,) in rows:
                if (yield from self._end(response_id, "failed", ORPHANED)):
                    failed.append(response_id)
        return failed

    def _end(self, response_id: str, status: str, failure: Failure) -> Program[bool]:
        """End an active response from outside its producer (a cancel, a dead process) as
        a live failure ends: a builder resumed from the event log closes what is open, then
        `error` and `response.failed` with the partial output, which is also what is stored.
        `status` "cancelled" keeps that status (and no `error`) on the Response. False if
        it was not active."""
        rows = yield Query(
            f"UPDATE responses SET status = ?, owner = NULL, updated_at = ?"
            f" WHERE id = ? AND status IN {_ACTIVE} RETURNING response",
            (status, self._now(), response_id),
        )
        if not rows:
            return False
        response = loads(rows[0][0])
        output = yield Query(
            "SELECT data FROM items WHERE response_id = ? AND kind = ? ORDER BY position",
            (response_id, OUTPUT),
        )
        response["output"] = [loads(data) for (data,) in output]
        logged = yield Query(
            "SELECT data FROM events WHERE response_id = ? ORDER BY sequence_number",
            (response_id,),
        )
        events = [loads(data) for (data,) in logged]
        try:
            builder = ResponseBuilder.resume(_copy(response), events, clock=self._now)
            ending = builder.feed(failure)
            final = builder.response
        except Exception:  # a log no builder wrote: end it with the bare terminal event
            log.exception("response %s: its event log cannot be resumed", response_id)
            error = {"code": "server_error", "message": failure.message}
            final = {**response, "status": "failed", "error": error}
            next_seq = events[-1]["sequence_number"] + 1 if events else 0
            ending = [{"type": "response.failed", "sequence_number": next_seq, "response": final}]
        if status != "failed":  # the terminal event carries `final` itself
            final.update(status=status, error=None)
        yield Query("UPDATE responses SET response = ? WHERE id = ?", (_body(final), response_id))
        yield Query("DELETE FROM items WHERE response_id = ? AND kind = ?", (response_id, OUTPUT))
        yield from self._insert_items(response_id, OUTPUT, _serialized(final["output"]))
        yield from self._log_events(response_id, _logged(ending))
        return True

    def _delete(self, response_id: str, tenant: str) -> Program[bool]:
        rows = yield Query(
            "DELETE FROM responses WHERE id = ? AND tenant = ? RETURNING id", (response_id, tenant)
        )
        return bool(rows)

    def _update_metadata(
        self, response_id: str, tenant: str, metadata: dict[str, str]
    ) -> Program[dict[str, Any] | None]:
        rows = yield Query(
            "SELECT response FROM responses WHERE id = ? AND tenant = ?", (response_id, tenant)
        )
        if not rows:
            return None
        yield Query(
            "UPDATE responses SET response = ?, updated_at = ? WHERE id = ?",
            (dumps({**loads(rows[0][0]), "metadata": metadata}), self._now(), response_id),
        )
        return (yield from self._get(response_id, tenant))

    def _expire(self) -> Program[int]:
        rows = yield Query(
            f"DELETE FROM responses WHERE expires_at <= ? AND status NOT IN {_ACTIVE} RETURNING id",
            (self._now(),),
        )
        return len(rows)

    # ------------------------------------------------------------ programs: conversations

    def _create_conversation(
        self, conversation: dict[str, Any], items: list[dict[str, Any]], tenant: str
    ) -> Program[None]:
        yield Query(
            "INSERT INTO conversations (id, tenant, metadata, created_at, updated_at,"
            " next_position) VALUES (?, ?, ?, ?, ?, 0)",
            (
                conversation["id"],
                tenant,
                dumps(conversation["metadata"]),
                conversation["created_at"],
                self._now(),
            ),
        )
        yield from self._add_conversation_items(conversation["id"], tenant, items, False)

    def _get_conversation(self, conversation_id: str, tenant: str) -> Program[dict | None]:
        rows = yield Query(
            "SELECT id, created_at, metadata FROM conversations WHERE id = ? AND tenant = ?",
            (conversation_id, tenant),
        )
        return _conversation(rows[0]) if rows else None

    def _update_conversation(
        self, conversation_id: str, tenant: str, metadata: dict[str, str]
    ) -> Program[dict | None]:
        rows = yield Query(
            "UPDATE conversations SET metadata = ?, updated_at = ? WHERE id = ? AND tenant = ?"
            " RETURNING id, created_at, metadata",
            (dumps(metadata), self._now(), conversation_id, tenant),
        )
        return _conversation(rows[0]) if rows else None

    def _delete_conversation(self, conversation_id: str, tenant: str) -> Program[bool]:
        rows = yield Query(
            "DELETE FROM conversations WHERE id = ? AND tenant = ? RETURNING id",
            (conversation_id, tenant),
        )
        return bool(rows)

    def _add_conversation_items(
        self, conversation_id: str, tenant: str, items: list[dict[str, Any]], skip_known: bool
    ) -> Program[list[dict[str, Any]] | None]:
        """Append `items` (each with its id); None if there is no such conversation. An id
        the conversation already holds (or twice in `items`) is a 400 naming it, or, with
        `skip_known` (a response's turn), that item is left out."""
        rows = yield Query(
            "UPDATE conversations SET next_position = next_position + ?, updated_at = ?"
            " WHERE id = ? AND tenant = ? RETURNING next_position",
            (len(items), self._now(), conversation_id, tenant),
        )
        if not rows:
            return None
        start = rows[0][0] - len(items)
        known: set[str] = set()
        for chunk in range(0, len(items), _ID_BATCH):  # bound the statement's parameters
            ids = [item["id"] for item in items[chunk : chunk + _ID_BATCH]]
            found = yield Query(
                "SELECT item_id FROM conversation_items WHERE conversation_id = ?"
                f" AND item_id IN ({', '.join('?' * len(ids))})",
                (conversation_id, *ids),
            )
            known.update(item_id for (item_id,) in found)
        added: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if item["id"] in known:
                if skip_known:
                    continue
                raise invalid(
                    f"Duplicate item found with id {quote(item['id'])}.", f"items[{index}].id"
                )
            known.add(item["id"])
            added.append(item)
        if added:
            yield Query(
                "INSERT INTO conversation_items (conversation_id, position, item_id, data)"
                " VALUES (?, ?, ?, ?)",
                many=[
                    (conversation_id, start + i, item["id"], dumps(item))
                    for i, item in enumerate(added)
                ],
            )
        return added

    def _conversation_items(
        self, conversation_id: str, tenant: str
    ) -> Program[list[dict[str, Any]] | None]:
        rows = yield Query(
            "SELECT i.data FROM conversations c"
            " LEFT JOIN conversation_items i ON i.conversation_id = c.id"
            " WHERE c.id = ? AND c.tenant = ? ORDER BY i.position",
            (conversation_id, tenant),
        )
        if not rows:
            return None
        return [loads(data) for (data,) in rows if data is not None]

    def _list_conversation_items(
        self, conversation_id: str, tenant: str, limit: int, order: str, after: str | None
    ) -> Program[ItemPage | None]:
        if not (
            yield Query(
                "SELECT 1 FROM conversations WHERE id = ? AND tenant = ?", (conversation_id, tenant)
            )
        ):
            return None
        sql = "SELECT item_id, data FROM conversation_items WHERE conversation_id = ?"
        args: list[Any] = [conversation_id]
        if after is not None:
            sql += (
                f" AND position {'>' if order == 'asc' else '<'} (SELECT position FROM"
                " conversation_items WHERE conversation_id = ? AND item_id = ?)"
            )
            args += [conversation_id, after]
        sql += f" ORDER BY position {order.upper()} LIMIT ?"
        rows = yield Query(sql, (*args, limit + 1))
        return _page(rows, limit)

    def _get_conversation_item(
        self, conversation_id: str, item_id: str, tenant: str
    ) -> Program[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        conversation = yield from self._get_conversation(conversation_id, tenant)
        if conversation is None:
            return None, None
        rows = yield Query(
            "SELECT data FROM conversation_items WHERE conversation_id = ? AND item_id = ?",
            (conversation_id, item_id),
        )
        return conversation, loads(rows[0][0]) if rows else None

    def _delete_conversation_item(
        self, conversation_id: str, item_id: str, tenant: str
    ) -> Program[tuple[dict[str, Any] | None, bool]]:
        conversation = yield from self._get_conversation(conversation_id, tenant)
        if conversation is None:
            return None, False
        rows = yield Query(
            "DELETE FROM conversation_items WHERE conversation_id = ? AND item_id = ?"
            " RETURNING item_id",
            (conversation_id, item_id),
        )
        return conversation, bool(rows)

    # ------------------------------------------------------------ programs: reads

    def _get(self, response_id: str, tenant: str) -> Program[dict[str, Any] | None]:
        rows = yield Query(
            "SELECT r.response, i.data FROM responses r"
            " LEFT JOIN items i ON i.response_id = r.id AND i.kind = ?"
            " WHERE r.id = ? AND r.tenant = ? ORDER BY i.position",
            (OUTPUT, response_id, tenant),
        )
        if not rows:
            return None
        response = loads(rows[0][0])
        response["output"] = [loads(data) for _, data in rows if data is not None]
        return response

    def _load_chain(self, response_id: str, tenant: str) -> Program[Chain | None]:
        # One statement: the walk, the named response's status and the items. The items join
        # is a range on their primary key rather than `=`, so no planner can answer it with a
        # hash join over the whole `items` table (PostgreSQL chose one, 2 ms at 8,400 items):
        # each response's items are one index range, and the cost follows the chain alone.
        rows = yield Query(
            "WITH RECURSIVE chain (id, prev, depth, status) AS ("
            " SELECT id, previous_response_id, 0, status FROM responses WHERE id = ? AND tenant = ?"
            " UNION ALL"
            " SELECT r.id, r.previous_response_id, c.depth + 1, r.status FROM responses r"
            " JOIN chain c ON r.id = c.prev WHERE r.tenant = ?)"
            " SELECT c.prev, c.status, i.data FROM chain c"
            " LEFT JOIN items i ON i.response_id >= c.id AND i.response_id <= c.id"
            " ORDER BY c.depth DESC, i.kind, i.position",
            (response_id, tenant, tenant),
        )
        if not rows:
            return None
        status = rows[-1][1]  # the named response's rows come last (depth 0)
        if rows[0][0] is not None:  # the oldest response found has a (missing) predecessor
            return Chain(status, None)
        return Chain(status, [loads(data) for _, _, data in rows if data is not None])

    def _get_item(self, item_id: str, tenant: str) -> Program[dict[str, Any] | None]:
        rows = yield Query(
            "SELECT i.data FROM items i JOIN responses r ON r.id = i.response_id"
            " WHERE i.item_id = ? AND r.tenant = ? ORDER BY r.created_at DESC, i.kind DESC LIMIT 1",
            (item_id, tenant),
        )
        if not rows:  # an item added through the Conversations API only
            rows = yield Query(
                "SELECT i.data FROM conversation_items i JOIN conversations c"
                " ON c.id = i.conversation_id WHERE i.item_id = ? AND c.tenant = ? LIMIT 1",
                (item_id, tenant),
            )
        return loads(rows[0][0]) if rows else None

    def _list_responses(self, tenant: str | None, q: ResponseQuery) -> Program[ItemPage]:
        filters = [
            ("status = ?", q.status),
            (f"{self._response_field('model')} = ?", q.model),
            (f"{self._response_field('surface')} = ?", q.surface),
            *((self._metadata_holds(), dumps({k: v})) for k, v in q.metadata),
        ]
        rows = yield _listing("responses", "id, response, tenant", tenant, q, filters)
        outputs: dict[str, list[dict[str, Any]]] = {}
        if q.with_output and rows:
            ids = [rid for rid, _, _ in rows[: q.limit]]
            found = yield Query(
                "SELECT response_id, data FROM items WHERE kind = ? AND response_id IN"
                f" ({', '.join('?' * len(ids))}) ORDER BY response_id, position",
                (OUTPUT, *ids),
            )
            for rid, data in found:
                outputs.setdefault(rid, []).append(loads(data))
        listed = [
            (
                rid,
                dumps(
                    {
                        **loads(data),
                        **({"output": outputs.get(rid, [])} if q.with_output else {}),
                        **({"tenant": owner} if tenant is None else {}),
                    }
                ),
            )
            for rid, data, owner in rows
        ]
        return _page(listed, q.limit)

    def _list_conversations(self, tenant: str | None, q: ListQuery) -> Program[ItemPage]:
        rows = yield _listing("conversations", "id, created_at, metadata, tenant", tenant, q)
        listed = [
            (
                row[0],
                dumps({**_conversation(row[:3]), **({"tenant": row[3]} if tenant is None else {})}),
            )
            for row in rows
        ]
        return _page(listed, q.limit)

    def _input_items(
        self, response_id: str, tenant: str, limit: int, order: str, after: str | None
    ) -> Program[ItemPage | None]:
        if not (
            yield Query(
                "SELECT 1 FROM responses WHERE id = ? AND tenant = ?", (response_id, tenant)
            )
        ):
            return None
        sql = "SELECT item_id, data FROM items WHERE response_id = ? AND kind = ?"
        args: list[Any] = [response_id, INPUT]
        if after is not None:
            sql += (
                f" AND position {'>' if order == 'asc' else '<'} (SELECT position FROM items"
                " WHERE response_id = ? AND kind = ? AND item_id = ? ORDER BY position LIMIT 1)"
            )
            args += [response_id, INPUT, after]
        sql += f" ORDER BY position {order.upper()} LIMIT ?"
        rows = yield Query(sql, (*args, limit + 1))
        return _page(rows, limit)

    def _read_events(
        self, response_id: str, tenant: str, after: int
    ) -> Program[tuple[str, int | None, list[Row]] | None]:
        # Status first: a final status read here means the events read next include the
        # terminal event (both are committed in one transaction).
        rows = yield Query(
            "SELECT status, owner FROM responses WHERE id = ? AND tenant = ?", (response_id, tenant)
        )
        if not rows:
            return None
        status, owner = rows[0]
        events = yield Query(
            "SELECT sequence_number, data FROM events WHERE response_id = ? AND sequence_number > ?"
            " ORDER BY sequence_number LIMIT ?",
            (response_id, after, _EVENT_BATCH),
        )
        return status, owner, events


# `usage_records`' columns are `UsageRecord`'s fields, by name and in order; a record's row
# is their values as a tuple (`dataclasses.astuple` would deep-copy each).
_USAGE_COLUMNS = tuple(f.name for f in dataclasses.fields(UsageRecord))
_usage_row = operator.attrgetter(*_USAGE_COLUMNS)


def record_usage(records: Sequence[UsageRecord]) -> Program[None]:
    yield Query(
        f"INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)})"
        f" VALUES ({', '.join('?' * len(_USAGE_COLUMNS))}) ON CONFLICT (response_id) DO NOTHING",
        many=[_usage_row(r) for r in records],
    )


def usage_totals(since: int | None, tenant: str | None) -> Program[list[UsageTotal]]:
    """Usage per tenant and model (a program any backend, or a bare connection, can run)."""
    sql = (
        "SELECT tenant, model, COUNT(*), CAST(SUM(input_tokens) AS BIGINT),"
        " CAST(SUM(cached_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),"
        " CAST(SUM(reasoning_tokens) AS BIGINT), SUM(cost) FROM usage_records WHERE created_at >= ?"
    )
    args: list[Any] = [since or 0]
    if tenant is not None:
        sql += " AND tenant = ?"
        args.append(tenant)
    rows = yield Query(sql + " GROUP BY tenant, model ORDER BY tenant, model", args)
    return [
        UsageTotal(
            t, m, int(n), int(i), int(c), int(o), int(r), None if cost is None else float(cost)
        )
        for t, m, n, i, c, o, r, cost in rows
    ]


ORPHANED = Failure(ORPHANED_ERROR["code"], ORPHANED_ERROR["message"])
CANCELLED = Failure("cancelled", "The response was cancelled.")


def _listing(
    table: str,
    columns: str,
    tenant: str | None,
    q: ListQuery,
    filters: Sequence[tuple[str, Any]] = (),
) -> Query:
    """A page of `table`'s rows (`q.limit + 1` of them: one more says there is more),
    ordered by `created_at` then id, after the row `q.after`, one tenant's (None: all),
    filtered by creation time and `filters` (SQL with one placeholder, the value; a None
    value is no filter)."""
    where: list[str] = []
    args: list[Any] = []
    for sql, value in (
        ("tenant = ?", tenant),
        ("created_at >= ?", q.created_after),
        ("created_at < ?", q.created_before),
        *filters,
    ):
        if value is not None:
            where.append(sql)
            args.append(value)
    if q.after is not None:  # a row before (desc) / after (asc) the cursor's row
        where.append(
            f"(created_at, id) {'<' if q.order == 'desc' else '>'}"
            f" (SELECT created_at, id FROM {table} WHERE id = ?)"
        )
        args.append(q.after)
    order = q.order.upper()
    return Query(
        f"SELECT {columns} FROM {table}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY created_at {order}, id {order} LIMIT ?",
        (*args, q.limit + 1),
    )


def _page(rows: list[Row], limit: int) -> ItemPage:
    """A page from up to `limit + 1` rows of `(item_id, data)` (one more: there is more)."""
    return ItemPage(data=[loads(d) for _, d in rows[:limit]], has_more=len(rows) > limit)


def _conversation(row: Row) -> dict[str, Any]:
    """The Conversation object from `(id, created_at, metadata)`."""
    conversation_id, created_at, metadata = row
    return {
        "id": conversation_id,
        "object": "conversation",
        "created_at": int(created_at),
        "metadata": loads(metadata),
    }


def _secret(name: str, candidate: str) -> Program[str]:
    """The secret `name`; `candidate` becomes it when none is kept yet (first writer wins)."""
    yield Query(
        "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, candidate),
    )
    rows = yield Query("SELECT value FROM secrets WHERE name = ?", (name,))
    return str(rows[0][0])


def _copy(obj: T) -> T:
    """A deep copy of JSON data."""
    return loads(dumps(obj))


def _body(response: dict[str, Any]) -> str:
    """The Response object as stored in `responses.response`: without `output`."""
    return dumps({k: v for k, v in response.items() if k != "output"})


Item = tuple[str | None, str]  # an item as `items` keeps it: (its id, its JSON)


def _serialized(items: Sequence[dict[str, Any]]) -> list[Item]:
    return [(item.get("id"), dumps(item)) for item in items]


LoggedEvent = tuple[int, str]  # an event as `events` keeps it: (its sequence number, its JSON)


def _logged(events: Sequence[dict[str, Any]]) -> list[LoggedEvent]:
    return [(event["sequence_number"], dumps(event)) for event in events]


@dataclass(frozen=True, slots=True)
class _Row:
    """A Response as `responses` and `items` keep it, serialized on the caller's thread:
    what a program on the writer thread reads of it."""

    id: str
    status: str
    previous_response_id: str | None
    background: bool
    created_at: int | None
    body: str  # `_body`
    output: list[Item]

    @classmethod
    def of(cls, response: dict[str, Any]) -> _Row:
        return cls(
            response["id"],
            response["status"],
            response.get("previous_response_id"),
            bool(response.get("background")),
            response.get("created_at"),
            _body(response),
            _serialized(response.get("output") or []),
        )
