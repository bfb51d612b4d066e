"""The Messages surface's side of the surface x dialect tests: raw streams held to the
strict checker, and `messages_client`, the anthropic SDK's client for the every-surface
matrix (`SURFACES["messages"]` in tests/surfaces/test_matrix.py: a gateway with `url`,
`model`, `upstream` and `expected` (`text`, `tools`, `after_tools`), and a scenario:
`stream`, `parse` or `tools`)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
from pydantic import BaseModel

from respgate.surfaces.messages.validate import check_stream
from tests.support.oracle import parse_sse

CITY = "Paris"


def same(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks without what differs between two answers (sealed signatures, tool ids)."""
    return [{k: v for k, v in b.items() if k not in ("signature", "id")} for b in content]


async def raw_stream(url: str, body: dict[str, Any]) -> list[Any]:
    """`POST /v1/messages` streamed with plain HTTP: its events, framed as Anthropic does."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post("/v1/messages?beta=true", json={**body, "stream": True},
                              headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.content)
    assert "[DONE]" not in events
    return events


class Weather(BaseModel):
    city: str
    days: int


def tool(name: str, field: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}
    return {"name": name, "input_schema": schema}


TOOLS: Any = [tool("get_weather", "city"), tool("get_time", "tz")]


async def messages_client(gw: Any, scenario: str) -> None:
    sdk = anthropic.AsyncAnthropic(api_key="k", base_url=gw.url, max_retries=0)
    ask: Any = {"model": gw.model, "max_tokens": 1024}
    if scenario == "stream":
        hi: Any = [{"role": "user", "content": "hi"}]
        checked = check_stream(await raw_stream(gw.url, {**ask, "messages": hi}))
        async with sdk.messages.stream(**ask, messages=hi) as stream:
            message = await stream.get_final_message()
        assert same(message.model_dump(exclude_none=True)["content"]) == same(checked["content"])
        assert message.content[0].text == gw.expected.text  # type: ignore[union-attr]
        assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
        created = await sdk.messages.create(**ask, messages=hi)
        assert created.content[0].text == gw.expected.text  # type: ignore[union-attr]
        if gw.upstream is not None:
            assert gw.upstream.requests[-1].body["model"] == "upstream-m"
    elif scenario == "parse":
        parsed = await sdk.messages.parse(
            **ask, messages=[{"role": "user", "content": CITY}], output_format=Weather
        )
        assert parsed.parsed_output is not None and parsed.parsed_output.city == CITY
    else:
        question: Any = [{"role": "user", "content": "weather and time?"}]
        checked = check_stream(await raw_stream(gw.url, {**ask, "tools": TOOLS,
                                                         "messages": question}))  # fmt: skip
        assert checked["stop_reason"] == "tool_use"
        calls = [b for b in checked["content"] if b["type"] == "tool_use"]
        assert tuple(c["name"] for c in calls) == gw.expected.tools
        results = [
            {"type": "tool_result", "tool_use_id": c["id"], "content": f"r{i}"}
            for i, c in enumerate(calls)
        ]
        results[-1]["content"] = "12:00"
        answer = await sdk.messages.create(**ask, tools=TOOLS, messages=[
            *question,
            {"role": "assistant", "content": checked["content"]},
            {"role": "user", "content": results},
        ])  # fmt: skip
        assert answer.content[0].text == gw.expected.after_tools  # type: ignore[union-attr]
        if gw.upstream is not None:  # the calls and their results reached the upstream
            sent = orjson.dumps(gw.upstream.requests[-1].body).decode()
            assert all(c["id"] in sent for c in calls) and "12:00" in sent
