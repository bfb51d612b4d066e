"""Hosted-tool items, annotations and logprobs through the real server: the fake
upstream (real HTTP, OpenAI-format fixture streams) -> `responses` provider ->
builder -> `respgate` on 127.0.0.1 with a SQLite store -> the openai SDK.

The SDK's `responses.stream()` accumulates every event and validates the final
Response; the raw stream passes the strict checker; the stored Response keeps
the items; a `previous_response_id` turn sends them back to a native Responses
upstream and drops them, with a warning, for a Chat Completions one."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from respgate.config import Config, RouteConfig
from respgate.engine import Engine
from respgate.protocol.lifecycle import HOSTED_EVENTS, HOSTED_ITEM_EVENTS
from respgate.providers.registry import ProviderRegistry
from respgate.providers.router import Router
from respgate.store import open_store
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import provider
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse

FIXTURES = [
    "web_search",
    "file_search",
    "code_interpreter",
    "image_generation",
    "mcp",
    "mcp_approval",
    "mcp_failed",
    "logprobs",
]


def upstream_output(name: str) -> list[dict[str, Any]]:
    last = [ln for ln in fixture("responses", name).splitlines() if ln.startswith(b"data: ")][-1]
    return orjson.loads(last[len(b"data: ") :])["response"]["output"]


@pytest.fixture
async def serve(
    tmp_path: Path,
) -> AsyncIterator[Callable[[FakeUpstream, FakeUpstream | None], LiveServer]]:
    """A live server with a SQLite store: model `m` routed to a Responses upstream,
    model `c` (when given) to a Chat Completions one."""
    engines: list[Engine] = []

    def make(native: FakeUpstream, chat: FakeUpstream | None = None) -> LiveServer:
        providers = {"up": provider("up", "responses", native.url)}
        routes = [RouteConfig("m", "up", "upstream-m")]
        if chat is not None:
            providers["chat"] = provider("chat", "chat_completions", chat.url)
            routes.append(RouteConfig("c", "chat", "upstream-c"))
        engine = Engine(
            ProviderRegistry(Router(Config(providers, routes))),
            store=functools.partial(open_store, tmp_path),
        )
        engines.append(engine)
        return LiveServer(engine)

    yield make
    for engine in engines:
        await engine.registry.aclose()


@pytest.mark.parametrize("name", FIXTURES)
async def test_sdk_stream_accumulates_hosted_items_and_the_store_keeps_them(
    name: str, serve
) -> None:
    expected = upstream_output(name)
    body = {"model": "m", "input": "go"}
    if name == "logprobs":
        body |= {"include": ["message.output_text.logprobs"], "top_logprobs": 2}
    async with FakeUpstream(Reply(fixture("responses", name))) as upstream:
        with serve(upstream) as server:
            # The raw stream: the strict checker, the spec schemas, the SDK's event models.
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                r = await http.post("/v1/responses", json={**body, "stream": True})
                assert r.status_code == 200, r.text
                events = parse_sse(r.content)
            assert_valid_stream(events)
            # The openai SDK accumulates the same stream into its final Response.
            async with openai.AsyncOpenAI(api_key="k", base_url=f"{server.url}/v1") as sdk:
                seen: list[str] = []
                async with sdk.responses.stream(**body) as stream:
                    async for event in stream:
                        seen.append(event.type)
                    final = await stream.get_final_response()
                stored = await sdk.responses.retrieve(final.id)
            sent = upstream.requests[-1].body
    output = final.model_dump(mode="json", exclude_unset=True)["output"]
    assert [i["type"] for i in output] == [i["type"] for i in expected]
    for ours, theirs in zip(output, expected, strict=True):
        if ours["type"] in HOSTED_EVENTS:
            assert ours == theirs
        else:
            parts = [{k: v for k, v in c.items() if k != "parsed"} for c in ours["content"]]
            assert parts == theirs["content"]  # annotations, logprobs and all
    upstream_progress = [
        e["type"]
        for e in map(
            orjson.loads,
            (ln[6:] for ln in fixture("responses", name).splitlines() if ln.startswith(b"data: ")),
        )
        if e["type"] in HOSTED_ITEM_EVENTS
    ]
    assert [t for t in seen if t in HOSTED_ITEM_EVENTS] == upstream_progress
    assert stored.model_dump(mode="json", exclude_unset=True)["output"] == [
        {**i, "content": [{k: v for k, v in c.items() if k != "parsed"} for c in i["content"]]}
        if i["type"] == "message"
        else i
        for i in output
    ]
    assert sent["stream"] is True and sent["store"] is False
    if name == "logprobs":
        # (the reasoning carrier is always asked for too)
        assert "message.output_text.logprobs" in sent["include"] and sent["top_logprobs"] == 2
        assert final.output[0].content[0].logprobs  # type: ignore[union-attr]


async def test_previous_response_id_sends_the_web_search_back(serve) -> None:
    replies = (Reply(fixture("responses", "web_search")), Reply(fixture("responses", "text")))
    async with FakeUpstream(*replies) as upstream:
        with serve(upstream) as server:
            async with openai.AsyncOpenAI(api_key="k", base_url=f"{server.url}/v1") as sdk:
                async with sdk.responses.stream(model="m", input="When?") as stream:
                    first = await stream.get_final_response()
                second = await sdk.responses.create(
                    model="m", input="And who?", previous_response_id=first.id
                )
                items = await sdk.responses.input_items.list(second.id)
        sent = upstream.requests[-1].body
    assert second.output_text == "Hello!"
    assert "previous_response_id" not in sent
    assert [i["type"] for i in sent["input"]] == [
        "message",
        "web_search_call",
        "message",
        "message",
    ]
    search = first.output[0].model_dump(mode="json", exclude_unset=True)
    assert sent["input"][1] == search  # its upstream id, status and action: as it came
    assert sent["input"][1]["id"].startswith("ws_")
    annotations = sent["input"][2]["content"][0]["annotations"]
    assert [a["url"] for a in annotations] == [
        "https://en.wikipedia.org/wiki/Positron",
        "https://www.nobelprize.org/prizes/physics/1936/anderson/facts/",
    ]
    assert [i.type for i in items.data] == ["message"]


async def test_a_chat_completions_turn_drops_hosted_items_with_a_warning(serve) -> None:
    async with (
        FakeUpstream(Reply(fixture("responses", "code_interpreter"))) as native,
        FakeUpstream(Reply(fixture("chat_completions", "text"))) as chat,
    ):
        with serve(native, chat) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                first = (
                    await http.post("/v1/responses", json={"model": "m", "input": "10!"})
                ).json()
                r = await http.post(
                    "/v1/responses",
                    json={"model": "c", "input": "thanks", "previous_response_id": first["id"]},
                )
        sent = chat.requests[-1].body
    assert r.status_code == 200, r.text
    assert "code_interpreter_call" in r.headers["x-respgate-warning"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == "10! = 3628800; saved to out.txt."
    assert "import math" not in orjson.dumps(sent).decode()
