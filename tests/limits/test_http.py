"""Per-key limits through a real server: the openai SDK, SSE, JSON, background, WebSocket."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.asyncio.client import connect

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.limits import Limits, Quota
from respgate.limits.memory import MemoryCounters
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store
from respgate.store.keys import ApiKeys
from tests.support.live import LiveServer

KEY = "sk-limits-team-a-0123456789"
OTHER = "sk-limits-team-b-0123456789"
SLOW = {"echo_scenario": "long", "echo_tokens": "2000", "echo_delay_ms": "20"}
RATE_HEADERS = [
    f"x-ratelimit-{what}-{name}"
    for name in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
]


def serve(tmp_path: Path, key_limits: dict[str, int]) -> LiveServer:
    """A live server with a SQLite store, key KEY with `key_limits` and OTHER without."""
    engine = Engine(
        ProviderRegistry(),
        store=functools.partial(open_store, tmp_path / "data"),
        limits=Limits(),
    )
    keys = ApiKeys.from_config(
        [KeyConfig(tenant="team-a", key=KEY, **key_limits), KeyConfig(tenant="team-b", key=OTHER)]
    )
    return LiveServer(engine, keys=keys)


def sdk(server: LiveServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=20)


def http(server: LiveServer, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=20)


def until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[LiveServer]:
    with serve(tmp_path, {"requests_per_minute": 3, "tokens_per_minute": 100000}) as server:
        yield server


def test_every_response_carries_the_headers_and_the_fourth_is_a_429(
    limited: LiveServer,
) -> None:
    client = sdk(limited)
    raw = client.responses.with_raw_response.create(model="echo", input="hi")
    assert raw.status_code == 200
    assert [raw.headers.get(h) is not None for h in RATE_HEADERS] == [True] * 6
    assert raw.headers["x-ratelimit-limit-requests"] == "3"
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    with client.responses.with_streaming_response.create(
        model="echo", input="hi", stream=True
    ) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.headers["x-ratelimit-remaining-requests"] == "1"
        assert b"response.completed" in streamed.read()
    background = http(limited).post(
        "/v1/responses", json={"model": "echo", "input": "hi", "background": True}
    )
    assert background.status_code == 200
    assert background.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model="echo", input="hi")
    err = refused.value
    assert err.status_code == 429 and err.code == "requests_per_minute_exceeded"
    body = err.response.json()["error"]
    assert body["type"] == "rate_limit_error" and body["param"] is None
    assert "requests per minute" in body["message"]
    headers = err.response.headers
    assert 1 <= int(headers["retry-after"]) <= 20
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    print("429 headers:", dict(headers))
    # another key keeps its own (unlimited) budget, without rate-limit headers
    other = sdk(limited, OTHER).responses.with_raw_response.create(model="echo", input="hi")
    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


def test_tokens_per_minute_counts_the_real_usage_after_the_response(tmp_path: Path) -> None:
    with serve(tmp_path, {"tokens_per_minute": 40}) as server, http(server) as c:
        first = c.post("/v1/responses", json={"model": "echo", "input": "one two three"})
        assert first.headers["x-ratelimit-remaining-tokens"] == "40"
        used = first.json()["usage"]["total_tokens"]
        assert 0 < used < 40
        # streamed: its usage is only known at the end, and counts the same
        with c.stream(
            "POST",
            "/v1/responses",
            json={
                "model": "echo",
                "input": "x",
                "stream": True,
                "metadata": SLOW | {"echo_tokens": "60", "echo_delay_ms": "0"},
            },
        ) as streamed:
            remaining = int(streamed.headers["x-ratelimit-remaining-tokens"])
            assert 40 - used - 1 <= remaining <= 40 - used
            streamed.read()
        refused = c.post("/v1/responses", json={"model": "echo", "input": "hi"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "tokens_per_minute_exceeded"
        assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
        assert int(refused.headers["retry-after"]) >= 2  # 60+ tokens of debt at 40/min


def test_a_stream_slot_is_held_until_the_terminal_event_however_it_ends(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, {"concurrent_streams": 1}) as server, http(server) as c:
        slow = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}

        def refused_now() -> bool:
            r = c.post("/v1/responses", json={"model": "echo", "input": "hi"})
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "concurrent_streams_exceeded"
                return True
            assert r.status_code == 200
            return False

        # a client that disconnects mid-stream gives the slot back
        with (
            httpx.Client(base_url=server.url, timeout=20) as own,
            own.stream(
                "POST", "/v1/responses", json=slow, headers={"authorization": f"Bearer {KEY}"}
            ) as streamed,
        ):
            chunks = streamed.iter_bytes()  # (kept: a dropped iterator closes the stream)
            next(chunks)
            assert refused_now()
        until(lambda: not refused_now(), "the slot of a disconnected stream was not released")
        # a request rejected after admission (unknown previous response) gives it back
        for _ in range(3):
            r = c.post(
                "/v1/responses",
                json={"model": "echo", "input": "x", "previous_response_id": "resp_nope"},
            )
            assert r.status_code == 404
        assert not refused_now()
        # a failed run gives it back
        failed = c.post(
            "/v1/responses",
            json={"model": "echo", "input": "a b c d", "metadata": {"echo_scenario": "fail"}},
        )
        assert failed.json()["status"] == "failed"
        assert not refused_now()
        # a background response holds it until it is cancelled
        bg = c.post("/v1/responses", json={**slow, "stream": False, "background": True})
        assert bg.status_code == 200
        assert refused_now()
        assert c.post(f"/v1/responses/{bg.json()['id']}/cancel").status_code == 200
        until(lambda: not refused_now(), "a cancelled background response kept its slot")


def test_a_websocket_turn_over_a_limit_gets_the_envelope(tmp_path: Path) -> None:
    async def scenario(server: LiveServer) -> list[dict[str, Any]]:
        async with connect(
            server.ws_url, additional_headers={"authorization": f"Bearer {KEY}"}
        ) as ws:
            received = []
            for _ in range(2):
                await ws.send(
                    json.dumps({"type": "response.create", "model": "echo", "input": "hi"})
                )
                while True:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if event["type"] in ("error", "response.completed", "response.failed"):
                        received.append(event)
                        break
            return received

    with serve(tmp_path, {"requests_per_minute": 1}) as server:
        done, refused = asyncio.run(scenario(server))
    assert done["type"] == "response.completed"
    assert refused["type"] == "error" and refused["status"] == 429
    assert refused["error"]["type"] == "rate_limit_error"
    assert refused["error"]["code"] == "requests_per_minute_exceeded"


async def test_shutdown_gives_back_the_slots_of_the_runs_it_cuts_short() -> None:
    from respgate.protocol.request import parse_create_request

    counters = MemoryCounters()
    engine = Engine(ProviderRegistry(), limits=Limits(Quota(concurrent_streams=5), counters))
    body = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}
    runs = [
        await engine.create(parse_create_request(json.dumps(body).encode()), tenant="t")
        for _ in range(3)
    ]
    assert counters.in_use("tenant:t") == 3
    await asyncio.wait_for(engine.shutdown(grace=0), 10)
    assert all(run.response["status"] == "failed" for run in runs)
    assert counters.in_use("tenant:t") == 0
