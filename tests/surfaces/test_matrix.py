"""Every inbound surface x every upstream dialect, through a real respgate server (HTTP on
127.0.0.1) with the surface's own SDK as the client, the upstreams being `echo` and fixture
upstreams speaking real HTTP (tests/fixtures). Every stream is held to the surface's
strict checker.

To add a surface, add its client to `SURFACES`: an async function taking the `Gateway`
and the scenario (`stream`: text streamed and not streamed; `parse`: structured output;
`tools`: a streamed tool-calling turn, then the tool results sent back) that asserts what
the `Expected` row of the dialect says.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import orjson
import pytest
from pydantic import BaseModel

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer
from tests.surfaces.chat_support import checked
from tests.surfaces.messages_support import messages_client

DIALECTS = ("echo", "chat_completions", "anthropic", "responses")
SCENARIOS = ("stream", "parse", "tools")
TOOL_FIXTURES = {
    "chat_completions": "parallel_tools",
    "anthropic": "tool_use",
    "responses": "reasoning_tools",
}
CITY = "Paris"
ANSWER = orjson.dumps({"city": CITY, "days": 3}).decode()


@dataclass(frozen=True)
class Expected:
    text: str  # the answer to "hi"
    tools: tuple[str, ...]  # the tools called when offered get_weather and get_time
    after_tools: str  # the answer once the tool results are back


EXPECTED = {
    "echo": Expected("Echo: hi", ("get_weather", "get_time"), "Tool output: 12:00"),
    "chat_completions": Expected("Hello!", ("get_weather", "get_time"), "Hello!"),
    "anthropic": Expected("Hello!", ("get_weather", "get_time"), "Hello!"),
    "responses": Expected("Hello!", ("get_weather", "read_file"), "Hello!"),
}


def with_text(body: bytes, text: str) -> bytes:
    """A text fixture ("Hel" + "lo!") replayed with `text` in its place, split the same way."""
    half = len(text) // 2
    for old, new in ((b'"Hello!"', text), (b'"Hel"', text[:half]), (b'"lo!"', text[half:])):
        body = body.replace(old, orjson.dumps(new))
    return body


def replies(dialect: str, scenario: str) -> list[Reply]:
    text = fixture(dialect, "text")
    if scenario == "parse":
        return [Reply(with_text(text, ANSWER))]
    if scenario == "tools":
        return [Reply(fixture(dialect, TOOL_FIXTURES[dialect])), Reply(text)]
    return [Reply(text)]


@dataclass
class Gateway:
    """respgate serving one dialect: its URL, the model to ask for, the fake upstream
    (None for echo) and the dialect's expectations."""

    url: str
    model: str
    upstream: FakeUpstream | None
    expected: Expected


@contextlib.asynccontextmanager
async def gateway(dialect: str, scenario: str) -> AsyncIterator[Gateway]:
    if dialect == "echo":
        with LiveServer(Engine(ProviderRegistry())) as server:
            yield Gateway(server.url, "echo", None, EXPECTED[dialect])
        return
    async with FakeUpstream(*replies(dialect, scenario)) as upstream:
        engine = Engine(ProviderRegistry(router_for(dialect, upstream.url)))
        try:
            with LiveServer(engine) as server:
                yield Gateway(server.url, "m", upstream, EXPECTED[dialect])
        finally:
            await engine.registry.aclose()


# ---------------------------------------------------------------- recording the wire


class _Tee(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, sink: bytearray) -> None:
        self.inner, self.sink = inner, sink

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.sink.extend(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recording(httpx2.AsyncBaseTransport):
    """Real HTTP that keeps a copy of every response body the SDK reads."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.bodies: list[bytearray] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        self.bodies.append(bytearray())
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, self.bodies[-1]),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


# ---------------------------------------------------------------- Chat Completions


class Weather(BaseModel):
    city: str
    days: int


def fn(name: str, field: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}
    return {"type": "function", "function": {"name": name, "parameters": schema}}


TOOLS = [fn("get_weather", "city"), fn("get_time", "tz")]


async def chat_client(gw: Gateway, scenario: str) -> None:
    wire = Recording()
    async with openai.AsyncOpenAI(
        base_url=f"{gw.url}/v1",
        api_key="k",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=wire),
    ) as sdk:
        if scenario == "stream":
            await chat_text(sdk, wire, gw)
        elif scenario == "parse":
            completion = await sdk.chat.completions.parse(
                model=gw.model,
                messages=[{"role": "user", "content": CITY}],
                response_format=Weather,
            )
            parsed = completion.choices[0].message.parsed
            assert parsed is not None and parsed.city == CITY
        else:
            await chat_tools(sdk, wire, gw)


async def chat_text(sdk: openai.AsyncOpenAI, wire: Recording, gw: Gateway) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    stream = await sdk.chat.completions.create(
        model=gw.model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    frames = checked(bytes(wire.bodies[-1]), include_usage=True)
    assert len(frames) == len(chunks) + 1  # and [DONE]
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == gw.expected.text
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    completion = await sdk.chat.completions.create(model=gw.model, messages=messages)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == gw.expected.text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    if gw.upstream is not None:
        assert gw.upstream.requests[-1].body["model"] == "upstream-m"


async def chat_tools(sdk: openai.AsyncOpenAI, wire: Recording, gw: Gateway) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather and time?"}]
    stream = await sdk.chat.completions.create(
        model=gw.model,
        messages=messages,
        tools=TOOLS,
        stream=True,  # type: ignore[arg-type]
    )
    calls: dict[int, dict[str, str]] = {}
    reasons = []
    async for chunk in stream:
        reasons.append(chunk.choices[0].finish_reason)
        for call in chunk.choices[0].delta.tool_calls or ():
            if call.id is not None:
                assert call.function is not None and call.function.name is not None
                calls[call.index] = {"id": call.id, "name": call.function.name, "arguments": ""}
            assert call.function is not None
            calls[call.index]["arguments"] += call.function.arguments or ""
    checked(bytes(wire.bodies[-1]))
    assert reasons[-1] == "tool_calls"
    assert tuple(calls[i]["name"] for i in sorted(calls)) == gw.expected.tools
    for call in calls.values():
        assert isinstance(orjson.loads(call["arguments"]), dict)
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls.values()
            ],
        }
    )
    messages += [
        {"role": "tool", "tool_call_id": c["id"], "content": f"r{i}"}
        for i, c in enumerate(calls.values())
    ]
    messages[-1]["content"] = "12:00"
    completion = await sdk.chat.completions.create(
        model=gw.model,
        messages=messages,
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content == gw.expected.after_tools
    if gw.upstream is not None:  # the calls and their results reached the upstream
        sent = orjson.dumps(gw.upstream.requests[-1].body).decode()
        assert all(c["id"] in sent for c in calls.values()) and "12:00" in sent


SURFACES: dict[str, Callable[[Gateway, str], Awaitable[None]]] = {
    "chat": chat_client,
    "messages": messages_client,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("surface", sorted(SURFACES))
async def test_every_surface_through_every_dialect(
    surface: str, dialect: str, scenario: str
) -> None:
    async with gateway(dialect, scenario) as gw:
        await SURFACES[surface](gw, scenario)
