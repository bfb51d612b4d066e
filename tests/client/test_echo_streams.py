"""For every kind of stream respgate's server produces with the `echo` model, the
client's accumulator rebuilds exactly the terminal snapshot from the events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from respgate.client import Client, ResponseFailedError, Stream
from tests.support.live import LiveServer
from tests.support.stores import sqlite_engine
from tests.support.tools import TIME, WEATHER

SCENARIOS: dict[str, dict[str, Any]] = {
    "text": {"input": "hello there \u2028 world \U0001f600"},
    "instructions": {"input": "hi", "instructions": "Be brief."},
    "long": {"input": "x", "metadata": {"echo_scenario": "long", "echo_tokens": "300"}},
    "tool": {"input": "weather in Paris", "tools": [WEATHER]},
    "parallel_tools": {"input": "both", "tools": [WEATHER, TIME], "parallel_tool_calls": True},
    "tool_output": {
        "input": [
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "tools": [WEATHER],
    },
    "reasoning": {"input": "think about it", "reasoning": {"effort": "high", "summary": "auto"}},
    "reasoning_and_tool": {"input": "Paris", "reasoning": {"effort": "low"}, "tools": [WEATHER]},
    "refusal": {"input": "x", "metadata": {"echo_scenario": "refusal"}},
    "incomplete": {"input": "one two three four five six", "max_output_tokens": 3},
    "json_schema": {
        "input": "data",
        "text": {
            "format": {
                "type": "json_schema",
                "name": "r",
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            }
        },
    },
    "failed": {"input": "a b c d e f", "metadata": {"echo_scenario": "fail"}},
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with (
        LiveServer(sqlite_engine(tmp_path_factory.mktemp("store"))) as server,
        Client(f"{server.url}/v1") as c,
    ):
        yield c


@pytest.mark.parametrize("name", SCENARIOS)
def test_accumulator_rebuilds_the_terminal_snapshot(client: Client, name: str) -> None:
    stream: Stream
    with client.stream(model="echo", **SCENARIOS[name]) as stream:
        try:
            result = stream.final()
        except ResponseFailedError as exc:
            assert name == "failed"
            assert exc.response is not None and exc.response["status"] == "failed"
        else:
            assert name != "failed"
            assert result.mismatches == []
    acc = stream.state.accumulator
    assert acc.terminal is not None
    assert acc.mismatches == []
    assert acc.rebuilt() == acc.terminal.response
    assert acc.terminal.response["output"], "the scenario produced output"


def test_the_scenarios_cover_every_item_and_ending(client: Client) -> None:
    seen: set[str] = set()
    for body in SCENARIOS.values():
        stream = client.stream(model="echo", **body)
        with contextlib.suppress(ResponseFailedError):
            stream.final()
        response = stream.state.accumulator.terminal.response  # type: ignore[union-attr]
        seen.add(f"status:{response['status']}")
        for item in response["output"]:
            seen.add(item["type"])
            seen.update(f"part:{p['type']}" for p in item.get("content") or [])
            seen.update("summary" for _ in item.get("summary") or [])
    assert seen >= {
        "message", "function_call", "reasoning", "summary", "part:output_text", "part:refusal",
        "status:completed", "status:incomplete", "status:failed",
    }  # fmt: skip


def test_chained_turns_with_previous_response_id(client: Client) -> None:
    first = client.stream(model="echo", input="first").final()
    second = client.stream(model="echo", input="second", previous_response_id=first.id).final()
    assert second.response["previous_response_id"] == first.id
    assert second.output_text == "Echo: second"
