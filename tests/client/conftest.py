from __future__ import annotations

from collections.abc import Iterator

import pytest

from .replay_server import ReplayServer, start


@pytest.fixture(scope="session")
def replay() -> Iterator[ReplayServer]:
    server = ReplayServer()
    uv = start(server)
    yield server
    uv.should_exit = True
