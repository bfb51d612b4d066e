"""Gateway-run MCP tools through the real SDKs: the openai SDK's `responses.stream()` and
`create` (1.x and current), and the Agents SDK's `HostedMCPTool` (with and without
approval; with `echo` and with a Chat Completions upstream), over real HTTP to respgate,
which calls a real MCP server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from respgate.config import McpConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer
from tests.support.mcp_server import McpLive
from tests.support.stores import sqlite_engine


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpLive]:
    with McpLive() as live:
        yield live


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    engine = sqlite_engine(tmp_path)
    engine.mcp = McpConfig(allowed_hosts=("127.0.0.1",), call_timeout=5.0)
    with LiveServer(engine) as live:
        yield live


def shout_tool(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "kit", "server_url": url,
            "allowed_tools": ["shout"], "require_approval": "never", **fields}  # fmt: skip


async def test_openai_sdk_stream(server: LiveServer, mcp_server: McpLive) -> None:
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
    async with client.responses.stream(
        model="echo", input="hi there", tools=[shout_tool(mcp_server.url)]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    call = final.output[1]
    assert (call.name, call.output, call.status) == ("shout", "HI THERE!", "completed")
    assert final.output_text == "Tool output: HI THERE!"
    assert "response.mcp_call.completed" in kinds and "response.mcp_list_tools.completed" in kinds


async def test_openai_sdk_create_and_approval(server: LiveServer, mcp_server: McpLive) -> None:
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused")
    tool = shout_tool(mcp_server.url, require_approval="always")
    first = await client.responses.create(model="echo", input="quiet", tools=[tool])
    request = first.output[-1]
    assert request.type == "mcp_approval_request" and request.name == "shout"
    second = await client.responses.create(
        model="echo",
        previous_response_id=first.id,
        tools=[tool],
        input=[
            {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        ],
    )
    assert [item.type for item in second.output] == ["mcp_call", "message"]
    assert second.output[0].approval_request_id == request.id
    assert second.output_text == "Tool output: QUIET!"


try:  # openai-agents is not installed with openai 1.x: only its tests are skipped then
    import agents
except ImportError:
    agents = None
else:
    agents.set_tracing_disabled(True)
needs_agents = pytest.mark.skipif(agents is None, reason="openai-agents is not installed")


def hosted_agent(url: str, tool: Any) -> Any:
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
    model = agents.OpenAIResponsesModel(model="echo", openai_client=client)
    return agents.Agent(name="shouter", instructions="Be loud.", tools=[tool], model=model)


@needs_agents
async def test_agents_hosted_mcp_tool(server: LiveServer, mcp_server: McpLive) -> None:
    tool = agents.HostedMCPTool(tool_config=shout_tool(mcp_server.url))  # type: ignore[arg-type]
    result = await agents.Runner.run(hosted_agent(server.url, tool), "agents")
    assert result.final_output == "Tool output: AGENTS!"
    kinds = [item.type for item in result.new_items]
    assert "mcp_list_tools_item" in kinds and "tool_call_item" in kinds


@needs_agents
async def test_agents_hosted_mcp_tool_with_approval(server: LiveServer, mcp_server) -> None:
    asked: list[str] = []

    def approve(request: Any) -> dict[str, Any]:
        asked.append(request.data.name)
        return {"approve": True}

    tool = agents.HostedMCPTool(
        tool_config=shout_tool(mcp_server.url, require_approval="always"),  # type: ignore[arg-type]
        on_approval_request=approve,
    )
    result = await agents.Runner.run(hosted_agent(server.url, tool), "approved")
    assert asked == ["shout"]
    assert result.final_output == "Tool output: APPROVED!"


@needs_agents
async def test_agents_hosted_mcp_tool_with_a_chat_completions_upstream(mcp_server) -> None:
    """The model is a Chat Completions upstream (fixtures: it calls `kit__shout`, then
    answers `Hello!`); the Agents SDK sees the MCP items and the answer."""
    replies = (
        Reply(fixture("chat_completions", "mcp_call")),
        Reply(fixture("chat_completions", "text")),
    )
    async with FakeUpstream(*replies) as upstream:
        engine = Engine(ProviderRegistry(router_for("chat_completions", upstream.url)))
        engine.mcp = McpConfig(allowed_hosts=("127.0.0.1",), call_timeout=5.0)
        with LiveServer(engine) as live:
            client = AsyncOpenAI(base_url=f"{live.url}/v1", api_key="unused")
            model = agents.OpenAIResponsesModel(model="m", openai_client=client)
            tool = agents.HostedMCPTool(tool_config=shout_tool(mcp_server.url))  # type: ignore[arg-type]
            agent = agents.Agent(name="shouter", tools=[tool], model=model)
            result = await agents.Runner.run(agent, "hi")
    assert result.final_output == "Hello!"
    calls = [i.raw_item for i in result.new_items if i.type == "tool_call_item"]
    assert [(c.type, c.name, c.output) for c in calls] == [("mcp_call", "shout", "UPSTREAM!")]
    assert upstream.requests[1].body["messages"][-1]["content"] == "UPSTREAM!"
