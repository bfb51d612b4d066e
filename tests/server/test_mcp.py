"""Gateway-run MCP tools (`toolloop.py`) against a real MCP server over HTTP on 127.0.0.1,
driven by `echo`, which calls every function it is offered (the server's allowed tools,
named `<label>__<tool>`) and then answers `Tool output: <output>`. Every stream passes
the strict checker, the spec schemas and openai's types."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from respgate.config import McpConfig, McpServerConfig
from respgate.engine import Engine
from respgate.logs import ResponseLog, configure
from respgate.metrics import Metrics
from respgate.protocol.request import parse_create_request
from respgate.protocol.validate import check_events
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from respgate.toolloop import servers
from respgate.tools.mcp import McpError, McpServer, McpSessions
from tests.conftest import stream_events
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.server.test_websocket import turn
from tests.support.live import LiveServer, free_port
from tests.support.mcp_server import McpLive
from tests.support.oracle import assert_valid_stream
from tests.support.stores import sqlite_engine

SECRET = "s3cret-token-xyz"


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpLive]:
    with McpLive() as live:
        yield live


def config(**changes: Any) -> McpConfig:
    base: dict[str, Any] = {"allowed_hosts": ("127.0.0.1",), "list_timeout": 5.0,
                            "call_timeout": 1.5}  # fmt: skip
    return McpConfig(**{**base, **changes})


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = sqlite_engine(tmp_path)
    engine.mcp = config()
    return engine


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    await engine.start()
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://respgate.test") as c:
        yield c
    await engine.shutdown(0)


def mcp_tool(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "kit", "server_url": url,
            "require_approval": "never", **fields}  # fmt: skip


async def run(
    client: httpx.AsyncClient,
    tool: dict[str, Any],
    text: str | list[dict[str, Any]] = "hello",
    *,
    strict_only: bool = False,
    **body: Any,
):
    """One streamed `echo` response with `tool`, checked by every oracle (`strict_only`:
    the strict checker alone, for what the spec does not know); its events and Response."""
    body = {"model": "echo", "input": text, "tools": [tool], **body}
    events = await stream_events(client, body)
    if strict_only:
        assert not check_events(events)
    else:
        assert_valid_stream(events)
    final = events[-2]
    assert isinstance(final, dict)
    return events, final["response"]


def items(response: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in response["output"] if item["type"] == kind]


def answer(response: dict[str, Any]) -> str:
    return items(response, "message")[-1]["content"][0]["text"]


async def test_lists_calls_and_answers_in_one_response(client, mcp_server: McpLive) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], headers={"x-team": SECRET},
                    authorization=SECRET)  # fmt: skip
    before = len(mcp_server.requests)
    events, response = await run(client, tool)
    assert response["status"] == "completed"
    assert [i["type"] for i in response["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    (listing,) = items(response, "mcp_list_tools")
    assert listing["server_label"] == "kit" and listing["error"] is None
    assert {"add", "shout", "boom", "hang"} <= {t["name"] for t in listing["tools"]}
    (call,) = items(response, "mcp_call")
    assert (call["name"], call["arguments"]) == ("shout", '{"text":"hello"}')
    assert (call["status"], call["output"], call["error"]) == ("completed", "HELLO!", None)
    assert answer(response) == "Tool output: HELLO!"
    types = [e["type"] for e in events if isinstance(e, dict)]
    for name in ("mcp_list_tools.in_progress", "mcp_list_tools.completed", "mcp_call.in_progress",
                 "mcp_call_arguments.delta", "mcp_call_arguments.done", "mcp_call.completed"):  # fmt: skip
        assert f"response.{name}" in types
    # The headers reach the server, and nowhere else: not the Response, not the store.
    sent = mcp_server.requests[before:]
    assert sent and all(r.get("authorization") == f"Bearer {SECRET}" for r in sent)
    assert all(r.get("x-team") == SECRET for r in sent)
    assert SECRET not in str(events)
    stored = (await client.get(f"/v1/responses/{response['id']}")).json()
    assert SECRET not in str(stored) and stored["tools"][0]["server_url"] == mcp_server.url


async def test_a_tool_error_is_a_failed_call_the_model_sees(client, mcp_server) -> None:
    _, response = await run(client, mcp_tool(mcp_server.url, allowed_tools=["boom"]))
    (call,) = items(response, "mcp_call")
    assert call["status"] == "failed" and call["output"] is None
    assert call["error"]["type"] == "mcp_tool_execution_error"
    (text,) = [block["text"] for block in call["error"]["content"]]
    assert "boom" in text
    assert answer(response) == f"Tool output: Error: {text}"
    assert response["status"] == "completed"


async def test_a_server_that_hangs_times_out(client, engine, mcp_server) -> None:
    engine.mcp = config(call_timeout=0.5)
    events, response = await run(client, mcp_tool(mcp_server.url, allowed_tools=["hang"]))
    (call,) = items(response, "mcp_call")
    assert call["status"] == "failed"
    assert call["error"]["type"] == "http_error" and call["error"]["code"] == 504
    assert "did not answer" in call["error"]["message"]
    assert "response.mcp_call.failed" in [e["type"] for e in events if isinstance(e, dict)]
    assert answer(response).startswith("Tool output: Error: ")


async def test_a_server_that_is_down_is_a_failed_listing(client) -> None:
    down = f"http://127.0.0.1:{free_port()}/mcp"
    events, response = await run(client, mcp_tool(down))
    (listing,) = items(response, "mcp_list_tools")
    assert listing["error"] and listing["tools"] == []
    assert "response.mcp_list_tools.failed" in [e["type"] for e in events if isinstance(e, dict)]
    assert not items(response, "mcp_call")
    assert answer(response) == "Echo: hello"  # answered without the server's tools


async def test_a_listing_that_hangs_times_out(client, engine) -> None:
    engine.mcp = config(list_timeout=0.5)
    with McpLive(hang=True) as stuck:
        _, response = await run(client, mcp_tool(stuck.url))
    (listing,) = items(response, "mcp_list_tools")
    assert "did not answer the tool listing within 0.5s" in listing["error"]
    assert answer(response) == "Echo: hello"


async def test_parallel_calls_run_concurrently(client, mcp_server) -> None:
    # `ping` and `pong` each wait for the other: they only finish when run at the same time.
    before = len(mcp_server.methods)
    _, response = await run(client, mcp_tool(mcp_server.url, allowed_tools=["ping", "pong"]))
    calls = items(response, "mcp_call")
    assert [(c["name"], c["status"], c["output"]) for c in calls] == [
        ("ping", "completed", "ping hello"),
        ("pong", "completed", "pong hello"),
    ]
    # One session for the response: one handshake for the listing and both calls (and the
    # SDK, having listed in that session, does not list again to check the results).
    assert mcp_server.methods[before:] == [
        "server/discover", "tools/list", "tools/call", "tools/call"]  # fmt: skip
    await no_session_left()


def session_owners() -> list[asyncio.Task[Any]]:
    """The tasks holding an MCP session open (`tools.mcp._Held.own`)."""
    return [task for task in asyncio.all_tasks()
            if not task.done() and task.get_coro().__qualname__ == "_Held.own"]  # type: ignore[union-attr]  # fmt: skip


async def no_session_left() -> None:
    """The response's sessions close once it ended (in the background: wait for it)."""
    async with asyncio.timeout(10):
        while session_owners():
            await asyncio.sleep(0.01)


async def test_a_session_the_server_ended_is_replaced_once(mcp_server) -> None:
    """A request refused with "Session terminated" (an expired session: it did not run) is
    sent once more on a new session; any other failure is not sent again."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import INVALID_REQUEST

    sessions, server = McpSessions(5), McpServer("kit", mcp_server.url)
    before = len(mcp_server.methods)
    await sessions.list_tools(server, 5)
    clients: list[object] = []

    async def refused_once(client: object, message: str = "Session terminated") -> str:
        clients.append(client)
        if len(clients) == 1:
            raise MCPError(INVALID_REQUEST, message)
        return "ran"

    assert await sessions._bounded(server, "a call", 5, refused_once) == "ran"
    assert clients[0] is not clients[1]
    assert mcp_server.methods[before:] == ["server/discover", "tools/list", "server/discover"]
    clients.clear()
    other = functools.partial(refused_once, message="Invalid request")
    with pytest.raises(McpError) as caught:
        await sessions._bounded(server, "a call", 5, other)
    assert caught.value.error["type"] == "mcp_protocol_error" and len(clients) == 1
    sessions.aclose()
    await no_session_left()


async def test_allowed_tools_filters_what_the_model_sees(client, mcp_server) -> None:
    read_only = mcp_tool(mcp_server.url, allowed_tools={"read_only": True})
    _, response = await run(client, read_only)
    assert [(c["name"], c["output"]) for c in items(response, "mcp_call")] == [("add", "0")]


async def test_the_step_limit_ends_the_response_incomplete(client, engine, mcp_server) -> None:
    engine.mcp = config(max_steps=1)
    # (`max_steps` is not among the SDK's incomplete reasons: the strict checker only)
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"])
    _, response = await run(client, tool, strict_only=True)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_steps"}
    assert [i["type"] for i in response["output"]] == ["mcp_list_tools", "mcp_call"]


async def test_a_listing_is_reused_along_the_chain(client, mcp_server) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"])
    _, first = await run(client, tool)
    before = len(mcp_server.methods)
    _, second = await run(client, tool, "again", previous_response_id=first["id"])
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]
    assert items(second, "mcp_call")[0]["output"] == "AGAIN!"
    # No listing for the model: the only `tools/list` is the SDK's own after the call (it
    # checks the result against the tool's output schema).
    assert mcp_server.methods[before:] == ["server/discover", "tools/call", "tools/list"]


async def test_approval_round_trip(client, mcp_server) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"])
    del tool["require_approval"]  # OpenAI's default: always
    _, first = await run(client, tool)
    assert [i["type"] for i in first["output"]] == ["mcp_list_tools", "mcp_approval_request"]
    request = first["output"][1]
    assert (request["name"], request["arguments"]) == ("shout", '{"text":"hello"}')
    approve = {"type": "mcp_approval_response", "approval_request_id": request["id"],
               "approve": True}  # fmt: skip
    _, second = await run(client, tool, [approve], previous_response_id=first["id"])
    (call,) = items(second, "mcp_call")
    assert call["approval_request_id"] == request["id"] and call["output"] == "HELLO!"
    assert answer(second) == "Tool output: HELLO!"


async def test_a_declined_call_is_told_to_the_model(client, mcp_server) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], require_approval="always")
    _, first = await run(client, tool)
    request = items(first, "mcp_approval_request")[0]
    deny = {"type": "mcp_approval_response", "approval_request_id": request["id"],
            "approve": False}  # fmt: skip
    _, second = await run(client, tool, [deny], previous_response_id=first["id"])
    assert not items(second, "mcp_call")
    assert answer(second) == "Tool output: The user declined this tool call."


async def test_a_named_server_takes_its_headers_from_the_config(client, engine, mcp_server) -> None:
    named = McpServerConfig("docs", mcp_server.url, {"authorization": "Bearer from-config"})
    engine.mcp = config(allowed_hosts=(), servers={"docs": named})
    before = len(mcp_server.requests)
    tool = {"type": "mcp", "server_label": "docs", "allowed_tools": ["shout"],
            "require_approval": "never"}  # fmt: skip
    _, response = await run(client, tool)
    assert items(response, "mcp_call")[0]["output"] == "HELLO!"
    assert all(r["authorization"] == "Bearer from-config" for r in mcp_server.requests[before:])
    assert "from-config" not in str(response)


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"server_url": "http://10.0.0.1/mcp"}, "tools[0].server_url"),
        ({"server_url": "http://127.0.0.1.evil.test/mcp"}, "tools[0].server_url"),
        ({"server_url": "file:///etc/passwd"}, "tools[0].server_url"),
        ({"server_label": "nowhere", "server_url": None}, "tools[0].server_label"),
        ({"server_url": None, "connector_id": "connector_gmail"}, "tools[0].connector_id"),
        ({"server_url": None, "tunnel_id": "tun_1"}, "tools[0].tunnel_id"),
        ({"server_label": "bad label!"}, "tools[0].server_label"),
        ({"require_approval": "sometimes"}, "tools[0].require_approval"),
        ({"headers": {"x": 1}}, "tools[0].headers"),
    ],
)
async def test_servers_the_gateway_does_not_reach_are_a_400(client, tool, param) -> None:
    body_tool = {
        k: v for k, v in mcp_tool("http://127.0.0.1:9/mcp", **tool).items() if v is not None
    }
    r = await client.post(
        "/v1/responses", json={"model": "echo", "input": "x", "tools": [body_tool]}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


async def test_a_tool_choice_of_type_mcp_names_a_server(client, mcp_server) -> None:
    body = {"model": "echo", "input": "x", "tools": [mcp_tool(mcp_server.url)],
            "tool_choice": {"type": "mcp", "server_label": "elsewhere"}}  # fmt: skip
    r = await client.post("/v1/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice.server_label"


async def test_no_client_url_is_allowed_by_default(client, engine, mcp_server) -> None:
    engine.mcp = McpConfig()
    r = await client.post(
        "/v1/responses", json={"model": "echo", "input": "x", "tools": [mcp_tool(mcp_server.url)]}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].server_url"


async def test_a_chat_completions_upstream_calls_a_tool(mcp_server) -> None:
    """A Chat Completions model (fixture: text, then a call of `kit__shout`) gets the
    server's tools as functions and the result as a tool message, then answers."""
    replies = (
        Reply(fixture("chat_completions", "mcp_call")),
        Reply(fixture("chat_completions", "text")),
    )
    async with FakeUpstream(*replies) as upstream:
        engine = Engine(
            ProviderRegistry(router_for("chat_completions", upstream.url)), mcp=config()
        )
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], authorization=SECRET,
                            server_description="Loud tools.")  # fmt: skip
            _, response = await run(client, tool, model="m")
        await engine.registry.aclose()
    kinds = ["mcp_list_tools", "message", "mcp_call", "message"]
    assert [i["type"] for i in response["output"]] == kinds
    assert items(response, "mcp_call")[0]["output"] == "UPSTREAM!"
    assert answer(response) == "Hello!"
    assert response["usage"]["input_tokens"] == 30 + 12  # both model calls
    first, second = (r.body for r in upstream.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["kit__shout"]
    assert "MCP server 'kit': Loud tools." in first["messages"][0]["content"]
    assistant, result = second["messages"][-2:]
    assert assistant["content"] == "Let me shout."
    assert assistant["tool_calls"][0]["function"]["name"] == "kit__shout"
    assert result == {"role": "tool", "tool_call_id": "call_s", "content": "UPSTREAM!"}
    assert all(SECRET not in str(r.body) for r in upstream.requests)


@pytest.mark.parametrize(("kind", "first_input"), [("anthropic", 25), ("responses", 11)])
async def test_the_other_dialects_call_a_tool(mcp_server, kind: str, first_input: int) -> None:
    """Anthropic and a native Responses upstream (fixtures: text, then a call of
    `kit__shout`; then `Hello!`) get functions, never the `mcp` tool, and the output."""
    replies = (Reply(fixture(kind, "mcp_call")), Reply(fixture(kind, "text")))
    async with FakeUpstream(*replies) as upstream:
        engine = Engine(ProviderRegistry(router_for(kind, upstream.url)), mcp=config())
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], authorization=SECRET)
            _, response = await run(client, tool, model="m")
        await engine.registry.aclose()
    kinds = ["mcp_list_tools", "message", "mcp_call", "message"]
    assert [i["type"] for i in response["output"]] == kinds
    assert items(response, "mcp_call")[0]["output"] == "UPSTREAM!"
    assert answer(response) == "Hello!"
    assert response["usage"]["input_tokens"] == 30 + first_input  # both model calls
    assert all(SECRET not in str(r.body) for r in upstream.requests)
    first, second = (r.body for r in upstream.requests)
    assert b'"kit__shout"' in orjson.dumps(first["tools"])
    assert b'"mcp"' not in orjson.dumps(first["tools"]) and mcp_server.url not in str(first)
    assert "UPSTREAM!" in str(second) and "Let me shout." in str(second)


async def test_operations_are_metered_and_logged(mcp_server, tmp_path, caplog) -> None:
    metrics = Metrics()
    engine = Engine(ProviderRegistry(), observers=[metrics, ResponseLog()], mcp=config())
    transport = httpx.ASGITransport(app=create_app(engine))
    with caplog.at_level(logging.INFO, logger="respgate.response"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tool = mcp_tool(mcp_server.url, allowed_tools=["shout", "boom"], headers={"x": SECRET})
            await run(client, tool)
    text = metrics.render().decode()
    for tool_name, outcome in (("-", "ok"), ("shout", "ok"), ("boom", "mcp_tool_execution_error")):
        labels = f'outcome="{outcome}",server="127.0.0.1",tool="{tool_name}"'
        assert f"respgate_mcp_operations_total{{{labels}}} 1.0" in text
    assert 'respgate_mcp_operation_seconds_count{server="127.0.0.1"} 3.0' in text
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mcp ")]
    assert sorted(lines) == [
        "mcp call boom mcp_tool_execution_error on 127.0.0.1",
        "mcp call shout ok on 127.0.0.1",
        "mcp listing ok on 127.0.0.1",
    ]
    assert SECRET not in caplog.text


async def test_approval_with_the_full_history(client, mcp_server) -> None:
    """Without `previous_response_id`: the client sends back every item, the listing too
    (reused), then its approval."""
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], require_approval="always")
    user = {"type": "message", "role": "user", "content": "full"}
    _, first = await run(client, tool, [user], store=False)
    request = items(first, "mcp_approval_request")[0]
    approve = {"type": "mcp_approval_response", "approval_request_id": request["id"],
               "approve": True}  # fmt: skip
    _, second = await run(client, tool, [user, *first["output"], approve], store=False)
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]
    assert answer(second) == "Tool output: FULL!"


async def test_an_aborted_response_does_not_wait_for_its_call(engine, mcp_server) -> None:
    engine.mcp = config(call_timeout=60.0)
    await engine.start()
    tool = mcp_tool(mcp_server.url, allowed_tools=["hang"])
    body = {"model": "echo", "input": "x", "tools": [tool], "stream": True}
    run_ = await engine.create(parse_create_request(orjson.dumps(body)))
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not any(e["type"] == "response.mcp_call.in_progress" for e in seen):
            seen += await run_.next_batch() or []
        run_.abort("cancelled", "The client went away.")
        await run_.wait()
        while batch := await run_.next_batch():
            seen += batch
    assert seen[-1]["type"] == "response.failed"
    (call,) = [i for i in seen[-1]["response"]["output"] if i["type"] == "mcp_call"]
    assert call["status"] == "incomplete"
    assert not check_events([*seen, "[DONE]"])
    await no_session_left()  # the call's session too, its request in flight
    await engine.shutdown(0)


async def test_a_background_response_runs_its_tools(client, mcp_server) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"])
    body = {"model": "echo", "input": "later", "tools": [tool], "background": True}
    queued = (await client.post("/v1/responses", json=body)).json()
    assert queued["status"] == "queued"
    async with asyncio.timeout(20):
        while (done := (await client.get(f"/v1/responses/{queued['id']}")).json())["status"] in (
            "queued",
            "in_progress",
        ):
            await asyncio.sleep(0.05)
    assert [i["type"] for i in done["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert answer(done) == "Tool output: LATER!"
    forbidden = {**body, "tools": [mcp_tool("http://10.1.2.3/mcp")]}
    r = await client.post("/v1/responses", json=forbidden)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].server_url"


async def test_max_tool_calls_bounds_the_calls_run(client, mcp_server) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout", "add"])
    _, response = await run(client, tool, max_tool_calls=1)
    first, second = items(response, "mcp_call")
    assert (first["name"], first["output"]) == ("add", "0")
    assert second["name"] == "shout" and second["status"] == "failed"
    assert "max_tool_calls (1)" in second["error"]["message"]
    assert response["status"] == "completed" and answer(response).startswith("Tool output: Error")


async def test_a_tool_choice_of_type_mcp_picks_the_tool(client, mcp_server) -> None:
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout", "add"])
    choice = {"type": "mcp", "server_label": "kit", "name": "shout"}
    # (the spec has no `mcp` tool choice: the strict checker only)
    _, response = await run(client, tool, tool_choice=choice, strict_only=True)
    assert [c["name"] for c in items(response, "mcp_call")] == ["shout"]
    assert answer(response) == "Tool output: HELLO!"


async def test_the_model_failing_after_a_call_ends_the_stream(mcp_server) -> None:
    replies = (Reply(fixture("chat_completions", "mcp_call")), Reply.error(500, "upstream down"))
    async with FakeUpstream(*replies) as upstream:
        router = router_for("chat_completions", upstream.url, max_retries=0)
        engine = Engine(ProviderRegistry(router), mcp=config())
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"model": "m", "input": "x", "tools": [mcp_tool(mcp_server.url)]}
            events = await stream_events(client, body)
        await engine.registry.aclose()
    assert_valid_stream(events)
    final = events[-2]
    assert final["type"] == "response.failed"
    assert [i["type"] for i in final["response"]["output"]] == [
        "mcp_list_tools",
        "message",
        "mcp_call",
    ]


async def test_a_model_that_cannot_be_opened_leaves_no_session(mcp_server) -> None:
    """The servers are listed before the model is opened; when it cannot be (an HTTP error,
    no stream), their sessions are closed all the same."""
    async with FakeUpstream(Reply.error(500, "upstream down")) as upstream:
        router = router_for("chat_completions", upstream.url, max_retries=0)
        engine = Engine(ProviderRegistry(router), mcp=config())
        transport = httpx.ASGITransport(app=create_app(engine))
        before = len(mcp_server.methods)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"model": "m", "input": "x", "tools": [mcp_tool(mcp_server.url)]}
            r = await client.post("/v1/responses", json=body)
        await engine.registry.aclose()
    assert r.status_code == 502, r.text
    assert mcp_server.methods[before:] == ["server/discover", "tools/list"]
    await no_session_left()


async def test_a_named_server_can_be_kept_to_some_tenants(client, engine, mcp_server) -> None:
    named = McpServerConfig("docs", mcp_server.url, {}, ("team-a",))
    engine.mcp = config(servers={"docs": named})
    req = parse_create_request(orjson.dumps({"model": "echo", "input": "x", "tools": [
        {"type": "mcp", "server_label": "docs"}]}))  # fmt: skip
    assert servers(req, engine.mcp, "team-a")["docs"].url == mcp_server.url
    r = await client.post(  # this client's tenant is "": the server is unknown to it
        "/v1/responses", json={"model": "echo", "input": "x", "tools": req.tools}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools[0].server_label"


async def test_a_server_with_the_older_sse_transport(client) -> None:
    with McpLive(sse=True) as old:
        tool = mcp_tool(old.url, allowed_tools=["shout"], authorization=SECRET)
        _, response = await run(client, tool, "sse")
        assert answer(response) == "Tool output: SSE!"
        assert all(r.get("authorization") == f"Bearer {SECRET}" for r in old.requests)


async def test_websocket_turns_with_an_approval(mcp_server) -> None:
    """Two turns on one WebSocket, `store: false` (the connection's cache holds the first)."""
    tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], require_approval="always")
    with LiveServer(Engine(ProviderRegistry(), mcp=config())) as live:
        async with connect(live.ws_url) as ws:
            first = await turn(ws, input="socket", tools=[tool], store=False)
            assert_valid_stream(first, websocket=True)
            request = items(first[-1]["response"], "mcp_approval_request")[0]
            approve = {"type": "mcp_approval_response", "approval_request_id": request["id"],
                       "approve": True}  # fmt: skip
            second = await turn(ws, input=[approve], tools=[tool], store=False,
                                previous_response_id=first[-1]["response"]["id"])  # fmt: skip
            assert_valid_stream(second, websocket=True)
    assert answer(second[-1]["response"]) == "Tool output: SOCKET!"
    assert [i["type"] for i in second[-1]["response"]["output"]] == ["mcp_call", "message"]


async def test_a_server_gone_by_the_call_is_a_failed_call(client) -> None:
    """Listed in the first response, down for the second (the listing is reused)."""
    with McpLive() as brief:
        tool = mcp_tool(brief.url, allowed_tools=["shout"])
        _, first = await run(client, tool)
    _, second = await run(client, tool, "again", previous_response_id=first["id"])
    (call,) = items(second, "mcp_call")
    assert call["status"] == "failed"
    assert call["error"]["type"] == "http_error" and call["error"]["code"] == 502
    assert answer(second) == f"Tool output: Error: {call['error']['message']}"


def test_the_mcp_clients_http_lines_are_quiet() -> None:
    """`respgate serve`'s logging leaves out httpx2's line per MCP request (URLs)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure("text")
        assert not logging.getLogger("httpx2").isEnabledFor(logging.INFO)
        assert logging.getLogger("respgate.response").isEnabledFor(logging.INFO)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.getLogger("httpx2").setLevel(logging.NOTSET)


async def test_claudes_signed_thinking_goes_back_with_the_tool_result(mcp_server) -> None:
    """Anthropic wants the thinking block (with its signature) before the tool use when
    the tool result comes back: the loop gives it back to the provider that made it."""
    replies = (
        Reply(fixture("anthropic", "thinking_mcp_call")),
        Reply(fixture("anthropic", "text")),
    )
    async with FakeUpstream(*replies) as upstream:
        engine = Engine(ProviderRegistry(router_for("anthropic", upstream.url)), mcp=config())
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tool = mcp_tool(mcp_server.url, allowed_tools=["shout"])
            _, response = await run(client, tool, model="m", reasoning={"effort": "low"})
        await engine.registry.aclose()
    assert [i["type"] for i in response["output"]] == [
        "mcp_list_tools", "reasoning", "mcp_call", "message"]  # fmt: skip
    assistant, result = upstream.requests[1].body["messages"][-2:]
    assert assistant["content"][0] == {"type": "thinking", "thinking": "It should be loud.",
                                       "signature": "EqQBCkgIARABGAIiQL+sig/=="}  # fmt: skip
    assert [b["type"] for b in assistant["content"]] == ["thinking", "tool_use"]
    assert result["content"][0]["content"] == "UPSTREAM!"


async def test_an_approved_call_is_kept_when_the_model_then_fails(mcp_server) -> None:
    replies = (Reply(fixture("chat_completions", "mcp_call")), Reply.error(500, "down"))
    async with FakeUpstream(*replies) as upstream:
        router = router_for("chat_completions", upstream.url, max_retries=0)
        engine = Engine(ProviderRegistry(router), mcp=config())
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tool = mcp_tool(mcp_server.url, allowed_tools=["shout"], require_approval="always")
            user = {"type": "message", "role": "user", "content": "x"}
            _, first = await run(client, tool, [user], model="m", store=False)
            request = items(first, "mcp_approval_request")[0]
            approve = {"type": "mcp_approval_response", "approval_request_id": request["id"],
                       "approve": True}  # fmt: skip
            events = await stream_events(client, {"model": "m", "tools": [tool], "store": False,
                                                  "input": [user, *first["output"], approve]})  # fmt: skip
        await engine.registry.aclose()
    assert_valid_stream(events)
    final = events[-2]["response"]
    assert final["status"] == "failed"
    assert [(i["type"], i.get("output")) for i in final["output"]] == [("mcp_call", "UPSTREAM!")]
