"""Engines with a real store for tests that need `previous_response_id`."""

from __future__ import annotations

import functools
from pathlib import Path

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store


def sqlite_engine(directory: Path) -> Engine:
    """An engine with the echo model and a SQLite store in `directory`,
    opened by the app's startup (the server's lifespan)."""
    return Engine(ProviderRegistry(), store=functools.partial(open_store, directory))
