"""Raw reasoning event names, a documented choice (README "Raw reasoning event names"):
OpenAI's `response.reasoning_text.*` by default, which the openai SDK types and accumulates;
Open Responses' `response.reasoning.*` with `[server] reasoning_events = "open_responses"` or
per request with the `x-respgate-reasoning-events` header (the compliance suite's side:
tests/compliance). A Chat Completions upstream streams `reasoning_content` (real HTTP).
Runs with the current openai SDK and again with 1.x (scripts/test.sh)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from websockets.asyncio.client import connect

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer
from tests.support.oracle import check_events, parse_sse, spec_errors

HEADER = "x-respgate-reasoning-events"
THOUGHT = "Let me think."  # the fixture's reasoning_content, in two chunks


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with FakeUpstream(Reply(fixture("chat_completions", "reasoning_then_text"))) as up:
        engine = Engine(ProviderRegistry(router_for("chat_completions", up.url)))
        with LiveServer(engine) as live:
            yield live


async def test_the_openai_sdk_accumulates_raw_reasoning_by_default(server: LiveServer) -> None:
    client = openai.AsyncOpenAI(api_key="k", base_url=f"{server.url}/v1")
    async with client, client.responses.stream(model="m", input="6 * 7?") as stream:
        deltas = [e async for e in stream if e.type == "response.reasoning_text.delta"]
        final = await stream.get_final_response()
    assert "".join(e.delta for e in deltas) == THOUGHT
    assert all(type(e).__name__ == "ResponseReasoningTextDeltaEvent" for e in deltas)
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.content is not None and reasoning.content[0].text == THOUGHT
    assert final.output_text == "42"


def events(sse: bytes) -> list[dict]:
    return [e for e in parse_sse(sse) if isinstance(e, dict)]


def event_names(sse: bytes) -> set[str]:
    return {e["type"] for e in events(sse)}


async def test_the_header_picks_the_open_responses_names(server: LiveServer) -> None:
    body = {"model": "m", "input": "6 * 7?", "stream": True}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        spec = await http.post("/v1/responses", json=body, headers={HEADER: "open_responses"})
        openai_names = await http.post("/v1/responses", json=body, headers={HEADER: "openai"})
        bad = await http.post("/v1/responses", json=body, headers={HEADER: "anthropic"})
    # The strict checker and the spec's schemas accept it (openai's pydantic union does not:
    # that is the trade-off the mode makes).
    assert not check_events(parse_sse(spec.content))
    assert not [spec_errors(e) for e in events(spec.content) if spec_errors(e)]
    names = event_names(spec.content)
    assert {"response.reasoning.delta", "response.reasoning.done"} <= names
    assert not any(n.startswith("response.reasoning_text") for n in names)
    deltas = [e["delta"] for e in events(spec.content) if e["type"] == "response.reasoning.delta"]
    assert "".join(deltas) == THOUGHT
    assert {"response.reasoning_text.delta", "response.reasoning_text.done"} <= event_names(
        openai_names.content
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == HEADER


async def test_the_upgrade_header_names_a_connections_events(server: LiveServer) -> None:
    turn = json.dumps({"type": "response.create", "model": "m", "input": "6 * 7?"})
    async with connect(server.ws_url, additional_headers={HEADER: "open_responses"}) as ws:
        await ws.send(turn)
        names = []
        while not names or names[-1] != "response.completed":
            names.append(json.loads(await ws.recv())["type"])
    assert "response.reasoning.delta" in names and "response.reasoning.done" in names
    async with connect(server.ws_url, additional_headers={HEADER: "nope"}) as ws:
        error = json.loads(await ws.recv())
    assert error["status"] == 400 and error["error"]["param"] == HEADER
