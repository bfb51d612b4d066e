"""The real `openai` SDK against stored state: multi-turn with tool calls through
previous_response_id, retrieve, delete, input_items.list, cancel, resume a stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from respgate.store.sqlite import SqliteStore
from tests.contract.test_openai_sdk import WEATHER, sdk_httpx


@pytest.fixture
async def stored(tmp_path: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    store = await SqliteStore.open(tmp_path / "data", poll_interval=0.05)
    engine = Engine(ProviderRegistry(), store)
    http = sdk_httpx.AsyncClient(transport=sdk_httpx.ASGITransport(app=create_app(engine)))
    async with openai.AsyncOpenAI(
        api_key="unused", base_url="http://respgate.test/v1", http_client=http
    ) as client:
        yield client
    await engine.shutdown(grace=0)
    await store.close()


async def test_multi_turn_tool_calls_through_previous_response_id(
    stored: openai.AsyncOpenAI,
) -> None:
    first = await stored.responses.create(model="echo", input="Paris", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call"
    second = await stored.responses.create(
        model="echo",
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"temp": 21}),
            }
        ],
        tools=[WEATHER],
    )
    assert second.output_text == 'Tool output: {"temp": 21}'
    third = await stored.responses.create(
        model="echo", previous_response_id=second.id, input="thanks"
    )
    assert third.output_text == "Echo: thanks"
    assert third.previous_response_id == second.id

    retrieved = await stored.responses.retrieve(second.id)
    assert retrieved.output_text == second.output_text
    items = await stored.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["function_call_output"]
    assert items.first_id == items.last_id == items.data[0].id

    await stored.responses.delete(third.id)
    with pytest.raises(openai.NotFoundError):
        await stored.responses.retrieve(third.id)
    with pytest.raises(openai.NotFoundError) as err:
        await stored.responses.create(model="echo", previous_response_id=third.id, input="x")
    assert err.value.body["code"] == "previous_response_not_found"


async def test_cancel_a_background_response(stored: openai.AsyncOpenAI) -> None:
    queued = await stored.responses.create(
        model="echo",
        input="x",
        background=True,
        metadata={"echo_scenario": "long", "echo_tokens": "500", "echo_delay_ms": "10"},
    )
    assert queued.status == "queued"
    cancelled = await stored.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert (await stored.responses.retrieve(queued.id)).status == "cancelled"


async def test_resume_a_background_stream_after_a_sequence_number(
    stored: openai.AsyncOpenAI,
) -> None:
    queued = await stored.responses.create(model="echo", input="resume me please", background=True)
    for _ in range(500):
        if (await stored.responses.retrieve(queued.id)).status == "completed":
            break
        await asyncio.sleep(0.01)
    async with stored.responses.stream(response_id=queued.id) as stream:
        everything = [event async for event in stream]
    async with stored.responses.stream(response_id=queued.id, starting_after=4) as stream:
        resumed = [event async for event in stream]
        final = await stream.get_final_response()
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in everything[5:]]
    assert final.output_text == "Echo: resume me please"
