"""The real OpenAI Agents SDK (openai-agents) driving a tool loop against the echo model.

It sends messages without `type`, function calls and their outputs back as history, and
reads the stream through the openai SDK. Skipped in the openai 1.x environment, where
openai-agents is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

agents = pytest.importorskip("agents")

from openai import AsyncOpenAI  # noqa: E402

from tests.support.live import LiveServer  # noqa: E402
from tests.support.stores import sqlite_engine  # noqa: E402

agents.set_tracing_disabled(True)


def weather_agent(url: str, calls: list[str]):
    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"sunny in {city}"

    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
    model = agents.OpenAIResponsesModel(model="echo", openai_client=client)
    return agents.Agent(name="weather", instructions="Be brief.", tools=[get_weather], model=model)


@pytest.fixture
def server(tmp_path: Path):
    with LiveServer(sqlite_engine(tmp_path)) as live:
        yield live


async def test_tool_loop(server: LiveServer) -> None:
    calls: list[str] = []
    result = await agents.Runner.run(weather_agent(server.url, calls), "Paris")
    assert calls == ["Paris"]
    assert result.final_output == "Tool output: sunny in Paris"


async def test_streamed_tool_loop(server: LiveServer) -> None:
    calls: list[str] = []
    streamed = agents.Runner.run_streamed(weather_agent(server.url, calls), "Lima")
    raw_types = [
        event.data.type
        async for event in streamed.stream_events()
        if event.type == "raw_response_event"
    ]
    assert calls == ["Lima"]
    assert streamed.final_output == "Tool output: sunny in Lima"
    assert "response.function_call_arguments.delta" in raw_types
    assert raw_types.count("response.completed") == 2  # the tool call turn, then the answer
