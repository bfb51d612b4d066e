"""What Codex CLI sends and expects, over real HTTP and WebSocket, with a real upstream dialect
behind (the fake Chat Completions upstream counts the model calls).

Codex (codex-rs `ModelClientSession::prewarm_websocket`) opens each WebSocket session with a
prewarm: its first turn's whole request with `"generate": false` (and `"stream": true`, which
it sends in every message). It reads that turn's events until `response.completed`, keeps the
response id and the output items it saw, and sends the real turn as `previous_response_id` =
the prewarm's id with only the input items the prewarm did not have (none, for the first
turn). So a prewarm must complete with no output (an output item would be taken as part of
the conversation) and must record its context. Codex also copies `x-codex-turn-state` from the
upgrade response (and from each HTTP response) and sends it back within the turn.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream

# Codex 0.169's first WebSocket message (see the capture in the reference research), with
# its summarised input and tools filled in.
EXEC_COMMAND = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "yield_time_ms": {"type": "number"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
}
USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list"}]}
PREWARM = {
    "type": "response.create",
    "model": "m",
    "stream": True,
    "input": [USER],
    "tools": [EXEC_COMMAND],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"summary": "auto"},
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "01a22f6b-baa7-7971-87ea-0319bba1d6af",
    "generate": False,
    "client_metadata": {"thread_id": "t", "session_id": "s", "turn_id": "u"},
}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(Reply(fixture("chat_completions", "text"))) as up:
        yield up


def engine_for(upstream: FakeUpstream, store: Path | None = None) -> Engine:
    opener = None if store is None else functools.partial(open_store, store)
    return Engine(ProviderRegistry(router_for("chat_completions", upstream.url)), store=opener)


async def read_turn(ws: ClientConnection) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        events.append(event)
        if event["type"] in ("error", "response.completed", "response.failed"):
            return events


def user_texts(request_body: dict[str, Any]) -> list[str]:
    return [json.dumps(m["content"]) for m in request_body["messages"] if m["role"] == "user"]


async def test_websocket_prewarm_then_turn(upstream: FakeUpstream) -> None:
    with LiveServer(engine_for(upstream)) as server:
        headers = {"x-codex-turn-state": "ts-1", "openai-beta": "responses_websockets=2026-02-06"}
        async with connect(server.ws_url, additional_headers=headers) as ws:
            assert ws.response is not None
            assert ws.response.headers["x-codex-turn-state"] == "ts-1"

            await ws.send(json.dumps(PREWARM))
            prewarm = await read_turn(ws)
            # The whole prewarm: created, in_progress, completed with nothing in it.
            types = [e["type"] for e in prewarm]
            assert types == ["response.created", "response.in_progress", "response.completed"]
            done = prewarm[-1]["response"]
            assert done["status"] == "completed" and done["output"] == []
            assert done["usage"]["output_tokens"] == 0
            assert_valid_stream(prewarm, websocket=True)
            assert upstream.requests == []  # no model call

            # Codex's next message: the prewarm's id, no new input (it is all in the prewarm).
            turn = {**PREWARM, "input": [], "previous_response_id": done["id"]}
            del turn["generate"]
            await ws.send(json.dumps(turn))
            events = await read_turn(ws)
            assert events[-1]["type"] == "response.completed", events[-1]
            assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello!"
            assert len(upstream.requests) == 1
            assert "list" in user_texts(upstream.requests[0].body)[-1]


async def test_http_prewarm_is_stored_and_continued(upstream: FakeUpstream, tmp_path: Path) -> None:
    with LiveServer(engine_for(upstream, tmp_path)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            body = {k: v for k, v in PREWARM.items() if k not in ("type", "stream")}
            r = await http.post(
                "/v1/responses",
                json={**body, "store": True},
                headers={"x-codex-turn-state": "ts-2"},
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-codex-turn-state"] == "ts-2"
            prewarm = r.json()
            assert prewarm["status"] == "completed" and prewarm["output"] == []
            assert upstream.requests == []

            r = await http.post(
                "/v1/responses",
                json={"model": "m", "input": [], "previous_response_id": prewarm["id"]},
            )
            assert r.status_code == 200, r.text
            assert "x-codex-turn-state" not in r.headers  # only echoed, never made up
            assert r.json()["output"][0]["content"][0]["text"] == "Hello!"
            assert len(upstream.requests) == 1
            assert "list" in user_texts(upstream.requests[0].body)[-1]

            # Streaming: the turn state comes back on the SSE response too.
            r = await http.post(
                "/v1/responses",
                json={**body, "stream": True},
                headers={"x-codex-turn-state": "ts-3"},
            )
            assert r.headers["x-codex-turn-state"] == "ts-3"
            assert "response.output_item.added" not in r.text
            assert len(upstream.requests) == 1


async def test_websocket_stays_open_after_an_upstream_failure() -> None:
    dropped = Reply(fixture("chat_completions", "text"), drop_after=300)
    async with FakeUpstream(dropped, Reply(fixture("chat_completions", "text"))) as upstream:
        with LiveServer(engine_for(upstream)) as server:
            async with connect(server.ws_url) as ws:
                turn = {"type": "response.create", "model": "m", "stream": True, "input": "hi"}
                await ws.send(json.dumps(turn))
                failed = await read_turn(ws)
                assert failed[-1]["type"] == "response.failed", failed[-1]
                assert failed[-1]["response"]["error"]["code"]

                # The same socket serves the next turn.
                await ws.send(json.dumps(turn))
                events = await read_turn(ws)
                assert events[-1]["type"] == "response.completed", events[-1]
                assert len(upstream.requests) == 2


async def test_websocket_stream_false_is_still_refused(upstream: FakeUpstream) -> None:
    with LiveServer(engine_for(upstream)) as server:
        async with connect(server.ws_url) as ws:
            await ws.send(json.dumps({**PREWARM, "stream": False, "generate": True}))
            (event,) = await read_turn(ws)
            assert event["status"] == 400 and event["error"]["param"] == "stream"
