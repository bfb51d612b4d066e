"""A real server with the console on, a SQLite store and three keys: two tenants and an admin."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from respgate.config import KeyConfig
from respgate.store.keys import ApiKeys
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
SLOW = {"echo_scenario": "long", "echo_tokens": "30", "echo_delay_ms": "40"}


@contextlib.contextmanager
def console_server(directory: Path, *, console: bool = True) -> Iterator[LiveServer]:
    with LiveServer(sqlite_engine(directory), keys=KEYS, console=console) as server:
        yield server
