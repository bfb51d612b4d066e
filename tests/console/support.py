"""A real server with the console on, a SQLite store and three keys: two tenants and an admin."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from respgate.config import KeyConfig
from respgate.store.keys import ApiKeys
from respgate.store.sqlite import DB_FILE
from tests.support.live import LiveServer
from tests.support.stores import sqlite_engine

A_KEY = "sk-tenant-a-0123456789abcdef"
B_KEY = "sk-tenant-b-0123456789abcdef"
ADMIN_KEY = "sk-admin-x-0123456789abcdef"
KEYS = ApiKeys.from_config(
    [
        KeyConfig(tenant="team-a", key=A_KEY),
        KeyConfig(tenant="team-b", key=B_KEY),
        KeyConfig(tenant="ops", key=ADMIN_KEY, admin=True),
    ]
)
A = {"authorization": f"Bearer {A_KEY}"}
B = {"authorization": f"Bearer {B_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SLOW = {"echo_scenario": "long", "echo_tokens": "40", "echo_delay_ms": "50"}


@contextlib.contextmanager
def console_server(directory: Path, *, console: bool = True) -> Iterator[LiveServer]:
    with LiveServer(sqlite_engine(directory), keys=KEYS, console=console) as server:
        yield server


def background_with_a_broken_log(server: LiveServer, directory: Path) -> tuple[str, int]:
    """A finished background response of tenant A whose logged events then get one delta's
    `sequence_number` changed behind the server's back (the checker must flag it); returns
    the response id and the position of that event in the log."""
    body = {"model": "echo", "input": "one two three", "background": True}
    created = httpx.post(f"{server.url}/v1/responses", json=body, headers=A, timeout=30).json()
    deadline = time.monotonic() + 20
    while httpx.get(f"{server.url}/v1/responses/{created['id']}", headers=A).json()["status"] in (
        "queued",
        "in_progress",
    ):
        assert time.monotonic() < deadline, "the background response did not finish"
        time.sleep(0.05)
    with contextlib.closing(sqlite3.connect(directory / DB_FILE)) as db, db:
        rows = db.execute(
            "SELECT sequence_number, data FROM events WHERE response_id = ?"
            " ORDER BY sequence_number",
            (created["id"],),
        ).fetchall()
        position, (seq, data) = next(
            (i, row) for i, row in enumerate(rows) if "output_text.delta" in row[1]
        )
        event = {**orjson.loads(data), "sequence_number": 99}
        db.execute(
            "UPDATE events SET data = ? WHERE response_id = ? AND sequence_number = ?",
            (orjson.dumps(event).decode(), created["id"], seq),
        )
    return created["id"], position
