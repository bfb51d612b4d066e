"""The whole path with a real upstream dialect behind the server: fake upstream
(real HTTP) -> provider -> builder -> server -> the openai SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from tests.conftest import stream_events
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import SECRET, router_for
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse


async def stream_through(app: Starlette, body: dict) -> list:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await stream_events(c, body)


@pytest.fixture
async def engines() -> AsyncIterator[list[Engine]]:
    """Engines made by a test, their upstream clients closed at the end."""
    made: list[Engine] = []
    yield made
    for engine in made:
        await engine.registry.aclose()


@pytest.fixture
def app_for(engines: list[Engine]) -> Callable[[FakeUpstream, str], Starlette]:
    def make(upstream: FakeUpstream, kind: str) -> Starlette:
        engines.append(Engine(ProviderRegistry(router_for(kind, upstream.url))))
        return create_app(engines[-1])

    return make


@pytest.mark.parametrize("kind", ["chat_completions", "anthropic", "responses"])
async def test_each_dialect_through_the_server(kind: str, app_for) -> None:
    async with FakeUpstream(Reply(fixture(kind, "text"))) as upstream:
        app = app_for(upstream, kind)
        events = await stream_through(app, {"model": "m", "input": "hi"})
        assert_valid_stream(events)
        assert events[-2]["response"]["output"][0]["content"][0]["text"] == "Hello!"
        assert events[-2]["response"]["model"] == "m"

        transport = httpx2.ASGITransport(app=app)
        http_client = httpx2.AsyncClient(transport=transport)
        async with (
            openai.AsyncOpenAI(api_key="k", base_url="http://t/v1", http_client=http_client) as sdk,
            sdk.responses.stream(model="m", input="hi") as stream,
        ):
            final = await stream.get_final_response()
        assert final.output_text == "Hello!"
        assert final.usage is not None and final.usage.output_tokens > 0
        assert upstream.requests[-1].body["model"] == "upstream-m"


async def test_dropped_hosted_tool_is_reported_in_a_header(app_for) -> None:
    async with FakeUpstream(Reply(fixture("chat_completions", "text"))) as upstream:
        app = app_for(upstream, "chat_completions")
        body = {"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.post("/v1/responses", json=body)
        assert r.status_code == 200
        assert "web_search" in r.headers["x-respgate-warning"]
        assert "tools" not in upstream.requests[-1].body


async def test_upstream_429_before_the_body_is_a_plain_429(app_for) -> None:
    async with FakeUpstream(Reply.error(429, "slow down", **{"retry-after": "7"})) as upstream:
        app = app_for(upstream, "chat_completions")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.post("/v1/responses", json={"model": "m", "input": "hi", "stream": True})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "7"
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert SECRET not in r.text


async def test_upstream_drop_mid_stream_ends_failed(app_for) -> None:
    body = fixture("chat_completions", "text")
    async with FakeUpstream(Reply(body, drop_after=len(body) // 2)) as upstream:
        app = app_for(upstream, "chat_completions")
        events = await stream_through(app, {"model": "m", "input": "hi"})
    assert_valid_stream(events)
    assert [e if isinstance(e, str) else e["type"] for e in events[-3:]] == [
        "error",
        "response.failed",
        "[DONE]",
    ]


async def test_client_disconnect_reaches_the_upstream(engines: list[Engine]) -> None:
    body = fixture("chat_completions", "text")
    async with FakeUpstream(Reply(body, stall_after=len(body) // 2)) as upstream:
        engine = Engine(ProviderRegistry(router_for("chat_completions", upstream.url)))
        engines.append(engine)
        with LiveServer(engine) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                req = {"model": "m", "input": "hi", "stream": True}
                async with c.stream("POST", "/v1/responses", json=req) as r:
                    async for chunk in r.aiter_bytes():
                        if b"response.in_progress" in chunk:
                            break
            await asyncio.wait_for(upstream.disconnected.wait(), 10)


def _after_event(body: bytes, marker: bytes) -> int:
    """The offset just past the SSE event that contains `marker`."""
    return body.index(b"\n\n", body.index(marker)) + 2


async def stream_live(engine: Engine, body: dict) -> list:
    with LiveServer(engine) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            r = await c.post("/v1/responses", json={**body, "stream": True})
            assert r.status_code == 200, r.text
            return parse_sse(r.content)


async def test_upstream_silent_after_the_first_token_ends_failed(engines: list[Engine]) -> None:
    body = fixture("chat_completions", "text")
    stall = Reply(body, stall_after=_after_event(body, b'"Hel"'))
    async with FakeUpstream(stall) as upstream:
        router = router_for(
            "chat_completions", upstream.url, read_timeout=30.0, stream_idle_timeout=0.3
        )
        engines.append(Engine(ProviderRegistry(router)))
        events = await stream_live(engines[-1], {"model": "m", "input": "hi"})
        await asyncio.wait_for(upstream.disconnected.wait(), 10)  # the upstream was let go
    assert_valid_stream(events)
    assert [e if isinstance(e, str) else e["type"] for e in events[-3:]] == [
        "error",
        "response.failed",
        "[DONE]",
    ]
    assert events[-3]["code"] == "upstream_timeout"  # the error event; the Response's
    failed = events[-2]["response"]  # `error.code` is from the spec's enum
    assert "sent nothing for 0.3 seconds" in failed["error"]["message"]
    assert failed["output"][0]["content"][0]["text"] == "Hel"  # the partial output is kept


async def test_upstream_silent_before_the_first_token_may_think(engines: list[Engine]) -> None:
    body = fixture("chat_completions", "text")
    # Silent for longer than the idle limit, but before any token: read_timeout applies.
    thinking = Reply(body, pause_after=body.index(b"data: ", body.index(b"\n\n")), pause=1.0)
    async with FakeUpstream(thinking) as upstream:
        router = router_for(
            "chat_completions", upstream.url, read_timeout=30.0, stream_idle_timeout=0.3
        )
        engines.append(Engine(ProviderRegistry(router)))
        events = await stream_live(engines[-1], {"model": "m", "input": "hi"})
    assert_valid_stream(events)
    assert events[-2]["type"] == "response.completed"
