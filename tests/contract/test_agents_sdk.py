"""The real OpenAI Agents SDK (openai-agents) driving a tool loop against the echo model.

It sends messages without `type`, function calls and their outputs back as history, and
reads the stream through the openai SDK. Skipped in the openai 1.x environment, where
openai-agents is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

agents = pytest.importorskip("agents")

from openai import AsyncOpenAI, NotFoundError  # noqa: E402

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


async def test_openai_conversations_session_keeps_two_turns(server: LiveServer) -> None:
    """`OpenAIConversationsSession` keeps the history in respgate's Conversations API: the
    session creates a conversation, lists it before each turn and appends each turn."""
    calls: list[str] = []
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
    session = agents.OpenAIConversationsSession(openai_client=client)
    agent = weather_agent(server.url, calls)

    first = await agents.Runner.run(agent, "Paris", session=session)
    assert first.final_output == "Tool output: sunny in Paris" and calls == ["Paris"]
    conversation_id = session.session_id
    assert conversation_id.startswith("conv_")
    turn_one = await session.get_items()
    assert [i["type"] for i in turn_one] == [
        "message", "function_call", "function_call_output", "message",
    ]  # fmt: skip

    second = await agents.Runner.run(agent, "Lima", session=session)
    assert second.final_output == "Tool output: sunny in Lima" and calls == ["Paris", "Lima"]
    items = await session.get_items()
    assert [i["type"] for i in items] == [i["type"] for i in turn_one] * 2
    assert items[4]["content"][0]["text"] == "Lima"
    assert items[-1]["content"][0]["text"] == "Tool output: sunny in Lima"
    # the model was given the first turn as history
    response_id = second.raw_responses[-1].response_id
    sent = [i async for i in client.responses.input_items.list(response_id, order="asc")]
    assert [i.type for i in sent] == [i["type"] for i in turn_one] + [
        "message", "function_call", "function_call_output",
    ]  # fmt: skip
    assert sent[0].content[0].text == "Paris"
    listed = await client.conversations.items.list(conversation_id, order="asc")
    assert [i.id for i in listed.data] == [i["id"] for i in items]

    assert await session.pop_item() is not None
    assert len(await session.get_items()) == len(items) - 1
    await session.clear_session()
    with pytest.raises(NotFoundError):
        await client.conversations.retrieve(conversation_id)
