"""WebSocket mode on /v1/responses against a real uvicorn (the `websockets` client)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.protocol.lifecycle import TERMINAL_EVENTS
from respgate.providers.registry import ProviderRegistry
from respgate.store.keys import ApiKeys
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream
from tests.support.stores import sqlite_engine

KEY = "sk-test-websocket-0123456789"
SLOW = {"echo_scenario": "long", "echo_tokens": "2000", "echo_delay_ms": "25"}


@pytest.fixture
def live() -> Iterator[LiveServer]:
    with LiveServer(Engine(ProviderRegistry())) as server:
        yield server


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(sqlite_engine(tmp_path)) as server:
        yield server


def create(**body: Any) -> str:
    return json.dumps({"type": "response.create", "model": "echo", **body})


async def turn(ws: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    """Send one `response.create` and read until its one terminal message."""
    await ws.send(create(**body))
    return await read_turn(ws)


async def read_turn(ws: ClientConnection) -> list[dict[str, Any]]:
    events = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(raw, str), "JSON text frames"
        assert raw != "[DONE]"
        event = json.loads(raw)
        events.append(event)
        if event["type"] == "error" or event["type"] in TERMINAL_EVENTS:
            return events


async def assert_quiet(ws: ClientConnection) -> None:
    """Nothing more arrives for this turn (no `[DONE]`, no second terminal message)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.2)


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, [e["type"] for e in events]
    (event,) = events
    assert event["type"] == "error" and isinstance(event["status"], int)
    assert set(event["error"]) == {"type", "code", "message", "param"}
    assert isinstance(event["error"]["code"], str)
    return event


async def test_one_turn_is_the_sse_stream_without_done(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        events = await turn(ws, input=[{"type": "message", "role": "user", "content": "a b c"}])
        await assert_quiet(ws)
    assert_valid_stream(events, require_done=False)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Echo: a b c"


async def test_turns_are_sequential_and_numbered_from_zero(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        # Both messages sent at once: the second turn starts after the first one ends.
        await ws.send(create(input="Reply with exactly: first", store=False))
        await ws.send(create(input="Reply with exactly: second", store=False))
        first = await read_turn(ws)
        second = await read_turn(ws)
        await assert_quiet(ws)
    for events in (first, second):
        assert_valid_stream(events, require_done=False)
        assert events[0]["sequence_number"] == 0
        assert events[-1]["type"] == "response.completed"
    assert first[-1]["response"]["id"] != second[-1]["response"]["id"]
    assert "first" in first[-1]["response"]["output"][0]["content"][0]["text"]
    assert "second" in second[-1]["response"]["output"][0]["content"][0]["text"]


TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


async def test_store_false_continuation_uses_the_connection_cache(live: LiveServer) -> None:
    # No store at all: the continuation can only come from the connection's memory.
    async with connect(live.ws_url) as ws:
        first = await turn(ws, input="Paris", tools=[TOOL], store=False)
        assert first[-1]["type"] == "response.completed"
        (call,) = first[-1]["response"]["output"]
        assert call["type"] == "function_call"
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
        second = await turn(
            ws, previous_response_id=first[-1]["response"]["id"], input=[output], store=False
        )
    assert_valid_stream(second, require_done=False)
    final = second[-1]["response"]
    assert final["status"] == "completed"
    assert final["previous_response_id"] == first[-1]["response"]["id"]
    assert final["output"][0]["content"][0]["text"] == "Tool output: sunny"


async def test_store_false_response_is_not_visible_from_another_connection(
    stored: LiveServer,
) -> None:
    async with connect(stored.ws_url) as a:
        first = await turn(a, input="Remember: cobalt.", store=False)
        response_id = first[-1]["response"]["id"]
        async with connect(stored.ws_url) as b:
            missing = error_of(
                await turn(b, previous_response_id=response_id, input="And?", store=False)
            )
            assert missing["error"]["code"] == "previous_response_not_found"
            assert missing["error"]["param"] == "previous_response_id"
            # The failed turn does not spoil the connection: a fresh request completes.
            fresh = await turn(b, input="Start over.", store=False)
            assert fresh[-1]["type"] == "response.completed"
        # Still continuable on its own connection.
        again = await turn(a, previous_response_id=response_id, input="And?", store=False)
        assert again[-1]["type"] == "response.completed"


async def test_store_true_hydrates_from_the_store(stored: LiveServer) -> None:
    async with connect(stored.ws_url) as a:
        first = await turn(a, input="kept", store=True)
    async with connect(stored.ws_url) as b:
        second = await turn(b, previous_response_id=first[-1]["response"]["id"], input="next")
    assert second[-1]["type"] == "response.completed"


async def test_failed_continuation_evicts_the_previous_response(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        first = await turn(ws, input="Say OK.", store=False)
        previous = first[-1]["response"]["id"]
        stray = {"type": "function_call_output", "call_id": "call_missing", "output": "x"}
        failed = error_of(await turn(ws, previous_response_id=previous, input=[stray], store=False))
        assert failed["status"] == 400
        assert failed["error"]["code"] == "function_call_not_found"
        assert failed["error"]["param"] == "input[0].call_id"
        again = error_of(await turn(ws, previous_response_id=previous, input="Hi", store=False))
        assert again["error"]["code"] == "previous_response_not_found"
        await assert_quiet(ws)


async def test_mid_stream_failure_sends_response_failed_alone(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        first = await turn(ws, input="one two", store=False)
        previous = first[-1]["response"]["id"]
        events = await turn(
            ws,
            previous_response_id=previous,
            input="a b c d",
            store=False,
            metadata={"echo_scenario": "fail"},
        )
        await assert_quiet(ws)
        assert_valid_stream(events, websocket=True)
        assert events[-1]["type"] == "response.failed"
        assert not any(e["type"] == "error" for e in events)
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        # A failed continuation evicts its previous response too.
        again = error_of(await turn(ws, previous_response_id=previous, input="Hi", store=False))
        assert again["error"]["code"] == "previous_response_not_found"


async def test_unknown_previous_response_id(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        missing_id = f"resp_openresponses_missing_{int(time.time() * 1000)}"
        event = error_of(await turn(ws, previous_response_id=missing_id, input="x", store=False))
        await assert_quiet(ws)
    assert event["status"] == 404
    assert event["error"]["code"] == "previous_response_not_found"
    assert event["error"]["param"] == "previous_response_id"
    assert missing_id in event["error"]["message"]


@pytest.mark.parametrize("field", [("stream", False), ("stream_options", {}), ("background", True)])
async def test_transport_fields_are_refused(live: LiveServer, field: tuple[str, Any]) -> None:
    name, value = field
    async with connect(live.ws_url) as ws:
        event = error_of(await turn(ws, input="x", **{name: value}))
        assert event["status"] == 400
        assert event["error"]["param"] == name
        # The connection stays usable.
        assert (await turn(ws, input="x"))[-1]["type"] == "response.completed"


async def test_invalid_messages_get_an_envelope(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        await ws.send("not json")
        assert error_of(await read_turn(ws))["error"]["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "response.cancel"}))
        assert error_of(await read_turn(ws))["error"]["param"] == "type"
        await ws.send(create(input="x", temperature=5))
        assert error_of(await read_turn(ws))["error"]["param"] == "temperature"
        await ws.send(create(model="nope", input="x"))
        assert error_of(await read_turn(ws))["error"]["code"] == "model_not_found"


async def test_auth_on_the_upgrade_request() -> None:
    keys = ApiKeys.from_config([KeyConfig(tenant="team", key=KEY)])
    with LiveServer(Engine(ProviderRegistry()), keys=keys) as server:
        for headers in ({}, {"Authorization": "Bearer wrong-key-wrong-key-wrong"}):
            async with connect(server.ws_url, additional_headers=headers) as ws:
                event = error_of(await read_turn(ws))
                assert event["status"] == 401
                assert event["error"]["code"] == "invalid_api_key"
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        headers = {"Authorization": f"Bearer {KEY}"}
        async with connect(server.ws_url, additional_headers=headers) as ws:
            assert (await turn(ws, input="x"))[-1]["type"] == "response.completed"


async def test_connection_limit() -> None:
    with LiveServer(Engine(ProviderRegistry()), websocket_max_seconds=0.5) as server:
        async with connect(server.ws_url) as ws:
            assert (await turn(ws, input="x"))[-1]["type"] == "response.completed"
            event = error_of(await read_turn(ws))  # idle until the limit
            assert event["error"]["code"] == "websocket_connection_limit_reached"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        # A turn in flight at the limit ends failed, then the envelope comes.
        async with connect(server.ws_url) as ws:
            events = await turn(ws, input="x", metadata=SLOW)
            assert events[-1]["type"] == "response.failed"
            assert_valid_stream(events, websocket=True)
            event = error_of(await read_turn(ws))
            assert event["error"]["code"] == "websocket_connection_limit_reached"
            with pytest.raises(ConnectionClosed):
                await ws.recv()


async def test_disconnect_aborts_the_run(live: LiveServer) -> None:
    async with connect(live.ws_url) as ws:
        await ws.send(create(input="x", metadata=SLOW))
        while "output_text.delta" not in await ws.recv():
            pass
        (run,) = list(live.engine.runs)
        assert not run.task.done()
    deadline = time.monotonic() + 5  # the run lives on the server thread's loop: poll it
    while not (run.task and run.task.done()):
        assert time.monotonic() < deadline, "generation did not stop after the disconnect"
        await asyncio.sleep(0.01)
    assert run.response["status"] == "failed"
    assert run.response["error"]["message"] == "The client disconnected."
