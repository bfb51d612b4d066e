from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from tests.support.oracle import parse_sse


@pytest.fixture
def engine() -> Engine:
    return Engine(ProviderRegistry())


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://respgate.test") as c:
        yield c


async def stream_events(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> list[dict[str, Any] | str]:
    r = await client.post("/v1/responses", json={**body, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.content)
