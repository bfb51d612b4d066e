"""`[mcp] passthrough = "responses"`: a request's `mcp` tools go whole (secrets included)
to a route whose every provider is a native Responses upstream, which runs them; its
`mcp_*` items and events come back through the hosted-item path. Real HTTP throughout:
the fake upstream replays OpenAI's MCP streams, the openai SDK is the client."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from respgate.config import Config, McpConfig, RouteConfig, Target
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.providers.router import Router
from respgate.store import open_store
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import provider
from tests.server.test_hosted_e2e import upstream_output
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse

SECRET = "mcp-secret-7f3a"
# A URL no `[mcp]` allow list names: only the upstream may reach it.
TOOL = {"type": "mcp", "server_label": "deepwiki", "server_url": "http://10.0.0.7/mcp",
        "require_approval": "never", "headers": {"x-api-key": SECRET},
        "authorization": SECRET}  # fmt: skip


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., LiveServer]]:
    """A live server with a SQLite store: `m` routed to a Responses upstream, `mixed` to
    the same with a Chat Completions fallback."""
    engines: list[Engine] = []

    def make(upstream: FakeUpstream, passthrough: str = "responses") -> LiveServer:
        providers = {"up": provider("up", "responses", upstream.url),
                     "chat": provider("chat", "chat_completions", upstream.url)}  # fmt: skip
        routes = [RouteConfig("m", "up", "upstream-m"),
                  RouteConfig("mixed", "up", "upstream-m", (Target("chat"),))]  # fmt: skip
        engine = Engine(
            ProviderRegistry(Router(Config(providers, routes))),
            store=functools.partial(open_store, tmp_path),
            mcp=McpConfig(passthrough=passthrough),  # type: ignore[arg-type]
        )
        engines.append(engine)
        return LiveServer(engine)

    yield make
    for engine in engines:
        await engine.registry.aclose()


async def test_the_upstream_runs_the_tool_and_its_items_come_back(serve) -> None:
    expected = upstream_output("mcp")
    body = {"model": "m", "input": "Where is the client?", "tools": [TOOL]}
    replies = (Reply(fixture("responses", "mcp")), Reply(fixture("responses", "mcp")))
    async with FakeUpstream(*replies) as upstream:
        with serve(upstream) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                r = await http.post("/v1/responses", json={**body, "stream": True})
                assert r.status_code == 200, r.text
                events = parse_sse(r.content)
            assert_valid_stream(events)
            async with openai.AsyncOpenAI(api_key="k", base_url=f"{server.url}/v1") as sdk:
                async with sdk.responses.stream(**body) as stream:  # type: ignore[arg-type]
                    seen = [event.type async for event in stream]
                    final = await stream.get_final_response()
                stored = await sdk.responses.with_raw_response.retrieve(final.id)
    # The tool went to the upstream as the client wrote it, secrets included, both times.
    assert [request.body["tools"] for request in upstream.requests] == [[TOOL], [TOOL]]
    output = final.model_dump(mode="json", exclude_unset=True)["output"]
    assert output[:2] == expected[:2]  # the upstream's listing and call, ids and all
    assert [i["type"] for i in output] == ["mcp_list_tools", "mcp_call", "message"]
    for kind in ("mcp_list_tools.in_progress", "mcp_list_tools.completed",
                 "mcp_call.in_progress", "mcp_call_arguments.delta", "mcp_call.completed"):  # fmt: skip
        assert f"response.{kind}" in seen
    # ... and nowhere else: not in the Response, the stream or the store.
    assert SECRET not in r.text and SECRET not in stored.text
    assert final.tools[0].server_url == TOOL["server_url"]  # type: ignore[union-attr]


async def test_an_approval_round_trip_passes_through(serve) -> None:
    """The upstream asks for approval; the client's `mcp_approval_response` goes back to it
    with the request (by `previous_response_id`) and the call it then runs (here failing)
    comes back as a failed `mcp_call`."""
    tool = {**TOOL, "require_approval": "always"}
    replies = (
        Reply(fixture("responses", "mcp_approval")),
        Reply(fixture("responses", "mcp_failed")),
    )
    async with FakeUpstream(*replies) as upstream:
        with serve(upstream) as server:
            async with openai.AsyncOpenAI(api_key="k", base_url=f"{server.url}/v1") as sdk:
                first = await sdk.responses.create(model="m", input="Where?", tools=[tool])  # type: ignore[list-item]
                request = first.output[-1]
                assert request.type == "mcp_approval_request"
                approval = {"type": "mcp_approval_response", "approve": True,
                            "approval_request_id": request.id}  # fmt: skip
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                    r = await http.post("/v1/responses", json={
                        "model": "m", "input": [approval], "tools": [tool], "stream": True,
                        "previous_response_id": first.id})  # fmt: skip
                    assert r.status_code == 200, r.text
                    events = parse_sse(r.content)
    assert_valid_stream(events)
    sent = upstream.requests[-1].body
    assert sent["tools"] == [tool]
    assert [i["type"] for i in sent["input"]] == [
        "message", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"]  # fmt: skip
    assert sent["input"][2]["id"] == request.id and sent["input"][3]["approve"] is True
    final = events[-2]
    assert isinstance(final, dict) and final["type"] == "response.completed"
    call = final["response"]["output"][0]
    assert (call["type"], call["status"]) == ("mcp_call", "failed")
    assert call["approval_request_id"] == request.id and call["error"]["code"] == 503
    assert "response.mcp_call.failed" in [e["type"] for e in events if isinstance(e, dict)]


@pytest.mark.parametrize(
    ("model", "passthrough"),
    [("m", "never"), ("mixed", "responses"), ("echo", "responses")],
)
async def test_otherwise_the_gateway_runs_it_and_its_allow_list_applies(
    serve, model: str, passthrough: str
) -> None:
    """Passthrough is off, or a fallback (or `echo`) could not run the tool: respgate runs
    it, so `[mcp]` must allow the URL (it does not: 400 naming the field, nothing sent)."""
    async with FakeUpstream(Reply(fixture("responses", "mcp"))) as upstream:
        with serve(upstream, passthrough) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                r = await http.post("/v1/responses", json={"model": model, "input": "hi",
                                                           "tools": [TOOL]})  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "tools[0].server_url"
    assert upstream.requests == []


def test_a_compaction_call_leaves_mcp_tools_out() -> None:
    """A compaction call calls no tool: an `mcp` tool (and its secrets) is not sent."""
    from respgate.protocol.request import parse_create_request
    from respgate.providers.base import ModelCall
    from respgate.providers.responses import request_body

    req = parse_create_request(orjson.dumps({"model": "m", "input": "hi", "tools": [TOOL, {
        "type": "function", "name": "f", "parameters": {"type": "object"}}]}))  # fmt: skip
    call = ModelCall(req, list(req.items), model="m", instructions=None)
    assert request_body(call)["tools"][0] == TOOL  # passed through whole
    Engine._compaction_call(call)
    body = request_body(call)
    assert [t["type"] for t in body["tools"]] == ["function"] and body["tool_choice"] == "none"
    assert SECRET not in orjson.dumps(body).decode()
