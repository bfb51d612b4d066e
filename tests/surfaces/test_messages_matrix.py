"""The anthropic SDK through `/v1/messages` (real HTTP) against `echo` and each upstream
dialect (fixture upstreams over real HTTP): `messages.stream()` and `messages.create()`
with tools and thinking, the thinking block sent back, and a mid-stream upstream failure.
Every raw stream passes the strict Messages checker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anthropic
import pytest

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.surfaces.messages.validate import check_stream
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer
from tests.surfaces.messages_support import messages_client, raw_stream, same

# Per dialect: a reply that thinks (then answers or calls), one that calls tools, one that
# fails after some text.
FIXTURES = {
    "chat_completions": ("reasoning_then_text", "parallel_tools", "inband_error"),
    "anthropic": ("thinking_then_text", "tool_use", "error"),
    "responses": ("reasoning_tools", "reasoning_tools", "failed"),
}
TOOLS: list[Any] = [
    {
        "name": name,
        "description": f"The {name.split('_')[1]} in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    for name in ("get_weather", "get_time", "read_file")
]
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}
ASK: Any = [{"role": "user", "content": "Weather and time in Paris?"}]


@asynccontextmanager
async def gateway(dialect: str) -> AsyncIterator[tuple[str, str, FakeUpstream | None]]:
    """(respgate's URL, the model to ask, the fixture upstream or None for `echo`)."""
    if dialect == "echo":
        engine = Engine(ProviderRegistry())
        with LiveServer(engine) as server:
            yield server.url, "echo", None
        return
    thinks, calls, fails = FIXTURES[dialect]
    replies = [fixture(dialect, name) for name in (thinks, thinks, calls, fails, fails)]
    async with FakeUpstream(*map(Reply, replies)) as upstream:
        engine = Engine(ProviderRegistry(router_for(dialect, upstream.url)))
        try:
            with LiveServer(engine) as server:
                yield server.url, "m", upstream
        finally:
            await engine.registry.aclose()


@pytest.mark.parametrize("dialect", ["echo", "chat_completions", "anthropic", "responses"])
async def test_anthropic_sdk_through_messages(dialect: str) -> None:
    async with gateway(dialect) as (url, model, upstream):
        sdk = anthropic.AsyncAnthropic(api_key="k", base_url=url, max_retries=0)
        ask = {"model": model, "max_tokens": 4096, "tools": TOOLS, "thinking": THINKING}

        # The raw stream, checked strictly; then the SDK's own stream of the same answer.
        checked = check_stream(await raw_stream(url, {**ask, "messages": ASK}))
        async with sdk.messages.stream(**ask, messages=ASK) as stream:
            first = await stream.get_final_message()
        assert same(first.model_dump(exclude_none=True)["content"]) == same(checked["content"])
        thinking = [b for b in first.content if b.type == "thinking"]
        assert thinking and thinking[0].thinking.strip()
        assert thinking[0].signature.startswith("rg1.")  # the sealed carrier
        assert first.usage.output_tokens > 0

        # The answer goes back (thinking included) with the tools' results; tools are called.
        tool_results = [
            {"type": "tool_result", "tool_use_id": b.id, "content": "sunny"}
            for b in first.content
            if b.type == "tool_use"
        ]
        follow = [
            *ASK,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": tool_results or "And the time?"},
        ]  # fmt: skip
        if dialect == "echo":  # echo answers a tool result; a new question makes it call again
            follow += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "Paris"}]
        second = await sdk.messages.create(**ask, messages=follow)
        calls = [b for b in second.content if b.type == "tool_use"]
        assert second.stop_reason == "tool_use"
        assert {c.name for c in calls} <= {t["name"] for t in TOOLS} and calls
        assert all(isinstance(c.input, dict) for c in calls) and any(c.input for c in calls)
        if upstream is not None and dialect == "anthropic":
            # The thinking block reached the upstream that made it with its own signature.
            sent = upstream.requests[2].body["messages"][1]["content"]
            assert sent[0] == {
                "type": "thinking",
                "thinking": thinking[0].thinking,
                "signature": "EqQBCkgIARABGAIiQL+sig/==",
            }
        if upstream is None:
            return  # echo's failure scenario is not reachable through Messages metadata

        # A mid-stream upstream failure ends the stream with the `error` event.
        events = await raw_stream(url, {**ask, "messages": ASK})
        assert check_stream(events)["type"] == "error"
        assert any(e["type"] == "content_block_delta" for e in events)  # after some text
        with pytest.raises(anthropic.APIStatusError) as failed:
            async with sdk.messages.stream(**ask, messages=ASK) as stream:
                await stream.get_final_message()
        assert failed.value.body["error"]["type"] in ("api_error", "overloaded_error")  # type: ignore[index]


@pytest.mark.parametrize("scenario", ["stream", "parse", "tools"])
async def test_the_matrix_client_against_echo(scenario: str) -> None:
    """`messages_client`, the Messages row of the every-surface matrix, here with `echo`."""
    expected = SimpleNamespace(
        text="Echo: hi", tools=("get_weather", "get_time"), after_tools="Tool output: 12:00"
    )
    with LiveServer(Engine(ProviderRegistry())) as server:
        gw = SimpleNamespace(url=server.url, model="echo", upstream=None, expected=expected)
        await messages_client(gw, scenario)
