"""The real `openai` SDK against the app, in process.

Runs with whichever openai is installed: 3.x (httpx2) in the main test
environment, and openai==1.109.1 (httpx) in the second environment that
`scripts/test.sh` builds; the two versions break on different contract faults.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest

from respgate.server.app import create_app
from tests.support.tools import WEATHER

SDK_MAJOR = int(openai.__version__.split(".")[0])
if SDK_MAJOR >= 3:
    import httpx2 as sdk_httpx
else:
    import httpx as sdk_httpx


@pytest.fixture
async def sdk(engine) -> AsyncIterator[openai.AsyncOpenAI]:
    app = create_app(engine)
    http = sdk_httpx.AsyncClient(transport=sdk_httpx.ASGITransport(app=app))
    async with openai.AsyncOpenAI(
        api_key="unused", base_url="http://respgate.test/v1", http_client=http
    ) as client:
        yield client


async def test_create_stream_true(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(model="echo", input="hi there", stream=True)
    types = []
    text = ""
    async for event in stream:
        types.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert text == "Echo: hi there"


async def test_stream_helper_final_response(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model="echo", input="hello") as stream:
        snapshots = [e.snapshot async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert snapshots[-1] == "Echo: hello"
    assert final.output_text == "Echo: hello"
    assert final.usage is not None and final.usage.output_tokens == 2
    assert isinstance(final.created_at, int | float)


async def test_non_streaming(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(
        model="echo", input=[{"role": "user", "content": "plain"}]
    )
    assert response.status == "completed"
    assert response.output_text == "Echo: plain"


async def test_tool_call_round_trip(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model="echo", input="Paris", tools=[WEATHER]) as stream:
        argument_snapshots = [
            e.snapshot async for e in stream if e.type == "response.function_call_arguments.delta"
        ]
        first = await stream.get_final_response()
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "days": 0}
    assert argument_snapshots[-1] == call.arguments
    second = await sdk.responses.create(
        model="echo",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Paris"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "Tool output: sunny"


async def test_reasoning(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(
        model="echo", input="why", reasoning={"effort": "high", "summary": "auto"}
    ) as s:
        summary = "".join(
            [e.delta async for e in s if e.type == "response.reasoning_summary_text.delta"]
        )
        final = await s.get_final_response()
    assert summary == "Thinking about: why"
    assert final.output[0].type == "reasoning"
    assert final.output[0].summary[0].text == summary


async def test_refusal(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(
        model="echo", input="x", metadata={"echo_scenario": "refusal"}
    ) as s:
        final = await s.get_final_response()
    part = final.output[0].content[0]
    assert part.type == "refusal" and part.refusal == "I can't help with that."


async def test_incomplete(sdk: openai.AsyncOpenAI) -> None:
    events = []
    stream = await sdk.responses.create(
        model="echo", input="a b c d e", max_output_tokens=2, stream=True
    )
    async for event in stream:
        events.append(event)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    response = await sdk.responses.create(model="echo", input="a b c d e", max_output_tokens=2)
    assert response.status == "incomplete"


async def test_mid_stream_failure_raises(sdk: openai.AsyncOpenAI) -> None:
    """The `error` event carries the Open Responses nested `error` object too, so the
    SDK raises APIError with the message instead of reporting a silent success."""
    seen = []
    with pytest.raises(openai.APIError, match="scripted failure"):
        stream = await sdk.responses.create(
            model="echo", input="a b c d e f", stream=True, metadata={"echo_scenario": "fail"}
        )
        async for event in stream:
            seen.append(event.type)
    assert "response.output_text.delta" in seen
    assert "response.completed" not in seen


async def test_http_errors_are_typed(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.responses.create(model="no-such-model", input="x")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.responses.create(model="echo", input=[{"role": "user", "content": 1}])  # type: ignore[list-item]
    assert bad.value.param == "input[0].content"
