"""Gateway-run MCP tools through the real SDKs: the openai SDK's `responses.stream()` and
`create`, and the Agents SDK's `HostedMCPTool` (with and without approval), over real
HTTP to respgate, which calls a real MCP server over HTTP; `echo` calls the tool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from respgate.config import McpConfig
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


agents = pytest.importorskip("agents")
agents.set_tracing_disabled(True)


def hosted_agent(url: str, tool: agents.HostedMCPTool) -> Any:
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
    model = agents.OpenAIResponsesModel(model="echo", openai_client=client)
    return agents.Agent(name="shouter", instructions="Be loud.", tools=[tool], model=model)


async def test_agents_hosted_mcp_tool(server: LiveServer, mcp_server: McpLive) -> None:
    tool = agents.HostedMCPTool(tool_config=shout_tool(mcp_server.url))  # type: ignore[arg-type]
    result = await agents.Runner.run(hosted_agent(server.url, tool), "agents")
    assert result.final_output == "Tool output: AGENTS!"
    kinds = [item.type for item in result.new_items]
    assert "mcp_list_tools_item" in kinds and "tool_call_item" in kinds


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
