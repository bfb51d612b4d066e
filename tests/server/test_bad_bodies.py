"""Odd bodies against a real server (uvicorn on 127.0.0.1, SQLite store): each is a 400 naming
its param, before the first byte, never a 500, a 200 `failed` or a broken stream; and what is
accepted at the limits renders, streams and stores (issue 8 part 3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from respgate.protocol.errors import QUOTE_LIMIT
from respgate.protocol.request import MAX_DEPTH
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse
from tests.support.stores import sqlite_engine

BIG = 18446744073709551616  # 2**64: one more than orjson (and the stores) carry


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(sqlite_engine(tmp_path_factory.mktemp("data"))) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def post(http: httpx.Client, body: bytes | str, **headers: str) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return http.post(
        "/v1/responses", content=content, headers={"content-type": "application/json", **headers}
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def tool(parameters: str) -> str:
    return f'"tools":[{{"type":"function","name":"f","parameters":{parameters}}}]'


def schema_format(schema: str) -> str:
    return f'"text":{{"format":{{"type":"json_schema","name":"x","schema":{schema}}}}}'


PROP = '{{"type":"object","properties":{{"a":{}}}}}'

# name -> (the body's extra fields, the param the 400 must name)
CASES = {
    "int beyond 64 bits, typed": (f'"max_output_tokens":{BIG}', "max_output_tokens"),
    "int below -2^63, typed": (f'"top_logprobs":{-(2**63) - 1}', "top_logprobs"),
    "int beyond 64 bits in a tool schema": (
        tool(PROP.format(f'{{"type":"string","maxLength":{BIG}}}')),
        "tools[0].parameters.properties.a.maxLength",
    ),
    "float beyond a double in a tool schema": (
        tool(PROP.format('{"type":"number","minimum":1e400}')),
        "tools[0].parameters.properties.a.minimum",
    ),
    "5000-digit int in text.format": (
        schema_format(PROP.format('{"type":"integer","minimum":' + "9" * 5000 + "}")),
        "text.format.schema.properties.a.minimum",
    ),
    "int beyond 64 bits in a content part": (
        f'"input":[{{"role":"user","content":[{{"type":"input_text","text":"x","n":{BIG}}}]}}]',
        "input[0].content[0].n",
    ),
    "1,000 levels in an unknown field": (f'"foo":{nested(1000)}', "foo" + "[0]" * (MAX_DEPTH - 1)),
    "10,000 levels in an unknown field": (
        f'"foo":{nested(10_000)}',
        "foo" + "[0]" * (MAX_DEPTH - 1),
    ),
    "1,000 levels in tool parameters": (
        tool(f'{{"a":{nested(1000)}}}'),
        "tools[0].parameters.a" + "[0]" * (MAX_DEPTH - 4),
    ),
    "10,000 levels in a message content": (
        f'"input":[{{"role":"user","content":{nested(10_000)}}}]',
        "input[0].content" + "[0]" * (MAX_DEPTH - 3),
    ),
    "one level too deep (parsed, then refused)": (
        f'"input":[{{"role":"user","content":{nested(MAX_DEPTH - 2)}}}]',
        "input[0].content" + "[0]" * (MAX_DEPTH - 3),
    ),
    "a property that is not a schema": (
        tool(PROP.format("5")),
        "tools[0].parameters.properties.a",
    ),
    "text.format property not a schema": (
        schema_format(PROP.format('"x"')),
        "text.format.schema.properties.a",
    ),
    "schema type not a string": (
        tool('{"type":"object","properties":{"a":{"type":5}}}'),
        "tools[0].parameters.properties.a.type",
    ),
    "namespace function schema": (
        '"tools":[{"type":"namespace","name":"fs","description":"d","tools":'
        '[{"type":"function","name":"r","parameters":{"anyOf":{"a":1}}}]}]',
        "tools[0].tools[0].parameters.anyOf",
    ),
    "echo_tokens not a number": ('"metadata":{"echo_tokens":"x"}', "metadata.echo_tokens"),
    "echo_tokens too many": ('"metadata":{"echo_tokens":"100000000000"}', "metadata.echo_tokens"),
    "echo_delay_ms not a number": ('"metadata":{"echo_delay_ms":"-5"}', "metadata.echo_delay_ms"),
    "a metadata value not a string": ('"metadata":{"team":"a","tier":3}', "metadata.tier"),
    "an mcp header value not a string": (
        '"tools":[{"type":"mcp","server_label":"a","server_url":"https://mcp.example/mcp",'
        '"headers":{"X-Team":"a","X-Tier":3}}]',
        "tools[0].headers",
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("name", list(CASES))
def test_odd_body_is_a_400_naming_its_param(http: httpx.Client, name: str, stream: bool) -> None:
    extra, param = CASES[name]
    body = f'{{"model":"echo","input":"hi","stream":{str(stream).lower()},{extra}}}'
    if '"input":[' in extra:
        body = body.replace('"input":"hi",', "")
    r = post(http, body)
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert "[...]" not in error["message"]  # (msgspec's place for a mapping's value)
    assert "Error" not in error["message"]  # no exception class names


def test_values_at_the_limits_render_stream_and_store(http: httpx.Client) -> None:
    """The deepest body accepted and the largest integers accepted go through every layer."""
    # body 1, tools 2, tool 3, parameters 4, default 5 ... MAX_DEPTH
    deep = nested(MAX_DEPTH - 4)
    params = (
        '{"type":"object","properties":{"n":{"type":"integer","minimum":18446744073709551615},'
        f'"m":{{"type":"integer","minimum":{-(2**63)}}}}},"required":["n","m"],"default":{deep}}}'
    )
    body = f'{{"model":"echo","input":"hi",{tool(params)},"max_output_tokens":{2**64 - 1}}}'
    r = post(http, body)
    assert r.status_code == 200, r.text[:300]
    response = r.json()
    assert response["status"] == "completed"
    call = response["output"][0]
    assert orjson.loads(call["arguments"]) == {"n": 2**64 - 1, "m": 0}
    assert response["max_output_tokens"] == 2**64 - 1
    stored = http.get(f"/v1/responses/{response['id']}").json()
    assert stored["tools"][0]["parameters"]["default"] == orjson.loads(deep)
    r = post(http, body.replace('"input":"hi"', '"input":"hi","stream":true'))
    assert r.status_code == 200
    assert_valid_stream(parse_sse(r.content))


def test_a_float_minimum_for_an_integer_gives_a_valid_value(http: httpx.Client) -> None:
    schema = '{"type":"object","properties":{"n":{"type":"integer","minimum":1e300},"k":{"type":"integer","minimum":2.5},"b":true,"no":false},"required":["n","k","b","no"]}'
    r = post(http, f'{{"model":"echo","input":"hi",{tool(schema)}}}')
    assert r.status_code == 200, r.text[:300]
    arguments = orjson.loads(r.json()["output"][0]["arguments"])
    assert arguments == {"n": 1e300, "k": 3, "b": "hi", "no": None}


@pytest.mark.parametrize(
    ("name", "request_args"),
    [
        ("model", {"json": {"model": "m" * 10_000_000, "input": "x"}}),
        ("truncation", {"json": {"model": "echo", "input": "x", "truncation": "t" * 1_000_000}}),
        ("item type", {"json": {"model": "echo", "input": [{"type": "y" * 1_000_000}]}}),
        ("tool_choice", {"json": {"model": "echo", "input": "x", "tool_choice": "c" * 1_000_000}}),
        (
            "metadata key",
            {"json": {"model": "echo", "input": "x", "metadata": {"k" * 1_000_000: ""}}},
        ),
        (
            "previous_response_id",
            {"json": {"model": "echo", "input": "x", "previous_response_id": "r" * 1_000_000}},
        ),
        ("content type", {"content": b"{}", "headers": {"content-type": "text/" + "p" * 50_000}}),
    ],
)
def test_errors_quote_at_most_a_little_of_the_input(
    http: httpx.Client, name: str, request_args: dict
) -> None:
    r = http.post("/v1/responses", **request_args)
    assert 400 <= r.status_code < 500
    assert len(r.content) < 600, f"{name}: {len(r.content)} bytes"
    error = r.json()["error"]
    assert "…" in error["message"] or "…" in (error["param"] or "")
    assert all(len(run) <= QUOTE_LIMIT for run in _runs_of_repeats(r.text))


def test_a_long_unknown_path_is_a_short_404(http: httpx.Client) -> None:
    r = http.get("/v1/" + "x" * 50_000)
    assert r.status_code == 404
    assert len(r.content) < 600


def _runs_of_repeats(text: str) -> list[str]:
    """Maximal runs of one repeated character (the quoted filler above)."""
    runs, start = [], 0
    for i in range(1, len(text) + 1):
        if i == len(text) or text[i] != text[start]:
            if i - start > 8:
                runs.append(text[start:i])
            start = i
    return runs


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
def test_a_body_that_is_not_declared_json_is_refused(
    http: httpx.Client, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    r = httpx.post(
        f"{http.base_url}/v1/responses",
        content=b'{"model":"echo","input":"hi"}',
        headers=headers,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "unsupported_content_type"
    assert error["param"] is None
    assert "application/json" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_with_any_parameters_is_accepted(http: httpx.Client, content_type: str) -> None:
    r = post(http, '{"model":"echo","input":"hi"}', **{"content-type": content_type})
    assert r.status_code == 200
    assert r.json()["status"] == "completed"


def test_websocket_messages_have_the_same_limits(live: LiveServer, tmp_path: Path) -> None:
    """The WebSocket mode decodes messages with the same boundary (no 64-bit overflow later)."""
    from websockets.sync.client import connect

    with connect(live.ws_url, open_timeout=10) as ws:
        ws.send(
            f'{{"type":"response.create","model":"echo","input":"hi","max_output_tokens":{BIG}}}'
        )
        error = orjson.loads(ws.recv(timeout=10))
        assert error["type"] == "error"
        assert error["error"]["param"] == "max_output_tokens"
        ws.send(f'{{"type":"response.create","model":"echo","input":"hi","x":{nested(5000)}}}')
        error = orjson.loads(ws.recv(timeout=10))
        assert error["error"]["param"] == "x" + "[0]" * (MAX_DEPTH - 1)
        ws.send('{"type":"response.create","model":"echo","input":"hi"}')
        events = []
        while not events or events[-1]["type"] not in ("response.completed", "response.failed"):
            events.append(orjson.loads(ws.recv(timeout=10)))
        assert events[-1]["type"] == "response.completed"
