"""/healthz says the process is alive; /readyz says whether it should get traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.support.live import LiveServer
from tests.support.stores import sqlite_engine


class UnreachableStore:
    """A store whose database went away after start-up."""

    async def recover(self) -> list[str]:
        return []

    async def expire(self) -> int:
        return 0

    async def save(self, record: Any, *, durable: bool = True) -> bool:
        raise ConnectionRefusedError("connection refused")

    async def get(self, response_id: str, tenant: str) -> dict[str, Any] | None:
        raise ConnectionRefusedError("connection refused")

    async def close(self) -> None:
        return None


def test_ready_with_a_real_store(tmp_path: Path) -> None:
    with LiveServer(sqlite_engine(tmp_path)) as server:
        assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_ready_without_a_store() -> None:
    with LiveServer(Engine(ProviderRegistry())) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_an_unreachable_store_is_not_ready_but_alive() -> None:
    engine = Engine(ProviderRegistry(), UnreachableStore())  # type: ignore[arg-type]
    with LiveServer(engine) as server:
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "reason": "store unreachable: ConnectionRefusedError: connection refused",
        }
        assert httpx.get(f"{server.url}/healthz").status_code == 200
