"""POST /v1/responses over HTTP (in process): every echo path, every oracle."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from respgate.check import response_schema_errors
from tests.conftest import stream_events
from tests.support.oracle import assert_valid_stream, parse_sse
from tests.support.tools import TIME, WEATHER


def text_of(response: dict) -> str:
    return "".join(
        p.get("text", p.get("refusal", ""))
        for item in response["output"]
        if item["type"] == "message"
        for p in item["content"]
    )


async def both(client: httpx.AsyncClient, body: dict) -> tuple[list, dict]:
    """Stream the request and make it again without streaming; both must agree."""
    events = await stream_events(client, body)
    assert_valid_stream(events)
    r = await client.post("/v1/responses", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    final = r.json()
    assert response_schema_errors(final) == []
    terminal = events[-2]["response"]
    assert strip_ids(final) == strip_ids(terminal)
    return events, final


def strip_ids(response: dict) -> dict:
    """For comparing two runs: everything but ids and timestamps must be equal."""
    out = json.loads(json.dumps(response))
    out["id"] = out["created_at"] = out["completed_at"] = None
    for item in out["output"]:
        item["id"] = None
        item.pop("call_id", None)
    return out


async def test_text(client: httpx.AsyncClient) -> None:
    events, final = await both(client, {"model": "echo", "input": "hello world"})
    assert final["status"] == "completed"
    assert text_of(final) == "Echo: hello world"
    deltas = [
        e["delta"]
        for e in events
        if isinstance(e, dict) and e["type"] == "response.output_text.delta"
    ]
    assert deltas == ["Echo: ", "hello ", "world"]
    assert final["usage"]["output_tokens"] == 3
    assert final["usage"]["input_tokens"] == 2


async def test_stream_headers(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/responses", json={"model": "echo", "input": "x", "stream": True})
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert r.content.endswith(b"data: [DONE]\n\n")


async def test_unicode_line_separators_are_escaped(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/responses", json={"model": "echo", "input": "a\u2028b\u2029c", "stream": True}
    )
    assert "\u2028".encode() not in r.content and b"\\u2028" in r.content
    lines = r.text.splitlines()  # str.splitlines splits on U+2028; nothing may break
    assert all(line == "" or line.startswith(("event: ", "data: ")) for line in lines)


async def test_tool_call_from_schema(client: httpx.AsyncClient) -> None:
    events, final = await both(client, {"model": "echo", "input": "Paris", "tools": [WEATHER]})
    (call,) = final["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris", "days": 0}
    jsonschema.validate(json.loads(call["arguments"]), WEATHER["parameters"])
    assert call["call_id"].startswith("call_")
    deltas = [
        e
        for e in events
        if isinstance(e, dict) and e["type"] == "response.function_call_arguments.delta"
    ]
    assert len(deltas) > 1  # arguments stream in pieces
    assert final["tools"][0] == {**WEATHER, "strict": None}


async def test_parallel_tool_calls(client: httpx.AsyncClient) -> None:
    _, final = await both(client, {"model": "echo", "input": "x", "tools": [WEATHER, TIME]})
    assert [c["name"] for c in final["output"]] == ["get_weather", "get_time"]
    assert len({c["call_id"] for c in final["output"]}) == 2
    _, single = await both(
        client,
        {"model": "echo", "input": "x", "tools": [WEATHER, TIME], "parallel_tool_calls": False},
    )
    assert [c["name"] for c in single["output"]] == ["get_weather"]


async def test_tool_choice(client: httpx.AsyncClient) -> None:
    body = {"model": "echo", "input": "x", "tools": [WEATHER, TIME]}
    _, named = await both(client, {**body, "tool_choice": {"type": "function", "name": "get_time"}})
    assert [c["name"] for c in named["output"]] == ["get_time"]
    _, none = await both(client, {**body, "tool_choice": "none"})
    assert text_of(none) == "Echo: x"
    allowed = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "get_time"}],
    }
    _, limited = await both(client, {**body, "tool_choice": allowed})
    assert [c["name"] for c in limited["output"]] == ["get_time"]


async def test_tool_round_trip(client: httpx.AsyncClient) -> None:
    body = {
        "model": "echo",
        "tools": [WEATHER],
        "input": [
            {"role": "user", "content": "Paris"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
        ],
    }
    _, final = await both(client, body)
    assert text_of(final) == "Tool output: sunny, 21C"


async def test_reasoning_then_text(client: httpx.AsyncClient) -> None:
    events, final = await both(
        client, {"model": "echo", "input": "why", "reasoning": {"effort": "low"}}
    )
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"] == [
        {"type": "summary_text", "text": "Thinking about: why"}
    ]
    assert "response.reasoning_summary_text.delta" in [
        e["type"] for e in events if isinstance(e, dict)
    ]
    # "Thinking about: why" is 3 of echo's tokens, "Echo: why" 2: the usage says which
    usage = final["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == 3
    assert usage["output_tokens"] == 5


async def test_max_output_tokens_gives_incomplete(client: httpx.AsyncClient) -> None:
    events, final = await both(
        client, {"model": "echo", "input": "one two three four five", "max_output_tokens": 3}
    )
    assert events[-2]["type"] == "response.incomplete"
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][-1]["status"] == "incomplete"
    assert text_of(final) == "Echo: one two "
    assert final["usage"]["output_tokens"] == 3


async def test_json_schema_output_validates(client: httpx.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 3},
            "tags": {"type": "array"},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
    _, final = await both(client, {"model": "echo", "input": "Ada", "text": {"format": fmt}})
    value = json.loads(text_of(final))
    jsonschema.validate(value, schema)
    assert value["name"] == "Ada"
    assert final["text"]["format"]["name"] == "person"


async def test_refusal_scenario(client: httpx.AsyncClient) -> None:
    events, final = await both(
        client, {"model": "echo", "input": "x", "metadata": {"echo_scenario": "refusal"}}
    )
    assert final["output"][0]["content"][0]["type"] == "refusal"
    assert "response.refusal.delta" in [e["type"] for e in events if isinstance(e, dict)]


async def test_failure_scenario(client: httpx.AsyncClient) -> None:
    events, final = await both(
        client, {"model": "echo", "input": "a b c d e f", "metadata": {"echo_scenario": "fail"}}
    )
    types = [e["type"] if isinstance(e, dict) else e for e in events]
    assert types[-3:] == ["error", "response.failed", "[DONE]"]
    assert final["status"] == "failed"
    assert final["error"]["code"] == "server_error"
    assert 0 < len(text_of(final)) < len("Echo: a b c d e f")


async def test_long_scenario(client: httpx.AsyncClient) -> None:
    _, final = await both(
        client,
        {
            "model": "echo",
            "input": "x",
            "metadata": {"echo_scenario": "long", "echo_tokens": "500"},
        },
    )
    assert final["usage"]["output_tokens"] == 500
    assert text_of(final).split()[-1] == "token499"


async def test_models_and_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models")
    assert [m["id"] for m in r.json()["data"]] == ["echo"]
    assert (await client.get("/healthz")).json()["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": "gpt-nope", "input": "x"}, 404, "model", "model_not_found"),
        ({"input": "x"}, 400, "model", "missing_required_parameter"),
        (
            {"model": "echo", "input": [{"role": "user", "content": 5}]},
            400,
            "input[0].content",
            "invalid_value",
        ),
        (
            {"model": "echo", "input": "x", "previous_response_id": "resp_missing"},
            404,
            "previous_response_id",
            "previous_response_not_found",
        ),
    ],
)
async def test_errors_before_the_stream(
    client: httpx.AsyncClient, body: dict, status: int, param: str, code: str
) -> None:
    for stream in (False, True):
        r = await client.post("/v1/responses", json={**body, "stream": stream})
        assert r.status_code == status
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["param"], error["code"]) == (param, code)


async def test_body_problems(engine) -> None:
    from respgate.server.app import create_app

    app = create_app(engine, max_body_bytes=1000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/responses", json={"model": "echo", "input": "x" * 2000})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        r = await c.post(
            "/v1/responses", content=b"{oops", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = await c.put("/v1/responses")
        assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
        r = await c.get("/v1/responses")  # the list, with no store to list from
        assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"


async def test_unknown_tools_are_kept_with_a_warning_not_rejected(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "model": "echo",
        "input": "x",
        "tools": [{"type": "web_search"}, {"type": "namespace", "name": "n", "tools": []}],
    }
    r = await client.post("/v1/responses", json=body)
    assert r.status_code == 200
    assert r.json()["status"] == "completed"


async def test_cors_is_opt_in(engine) -> None:
    from respgate.server.app import create_app

    preflight = {"origin": "http://app.example", "access-control-request-method": "POST"}
    for origins, allowed in ((None, False), (["http://app.example"], True)):
        app = create_app(engine, cors_origins=origins)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.options("/v1/responses", headers=preflight)
            assert ("access-control-allow-origin" in r.headers) is allowed


async def test_keepalive_comments_while_the_model_is_silent(engine) -> None:
    from respgate.server.app import create_app

    app = create_app(engine, keepalive_seconds=0.02)
    body = {"model": "echo", "input": "a b", "stream": True, "metadata": {"echo_delay_ms": "150"}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/responses", json=body)
    assert b"\n\n: keep-alive\n\n" in r.content
    assert_valid_stream(parse_sse(r.content))
