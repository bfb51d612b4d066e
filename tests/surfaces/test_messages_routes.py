"""`/v1/messages`, `/v1/messages/count_tokens` and `HEAD /` over real HTTP: keys by
`x-api-key` or `Authorization`, every error in Anthropic's shape, limits, not stored,
non-streaming failures, a client disconnect reaching the upstream; the request
translation (`surfaces/messages/request.py`) and its 400s naming the field."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.limits import Limits
from respgate.protocol.errors import ApiError
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store
from respgate.store.keys import ApiKeys
from respgate.surfaces.messages.request import (
    count_tokens,
    parse_count_tokens_request,
    parse_messages_request,
)
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer

KEY = "sk-messages-team-a-0123456789"
HI = {"model": "echo", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    assert set(body["error"]) == {"type", "message"}
    return body["error"]["message"]


@pytest.fixture
def keyed(tmp_path: Path):
    engine = Engine(
        ProviderRegistry(), store=functools.partial(open_store, tmp_path / "data"), limits=Limits()
    )
    keys = ApiKeys.from_config([KeyConfig(tenant="team-a", key=KEY, requests_per_minute=2)])
    with LiveServer(engine, keys=keys) as server:
        yield server


def test_keys_errors_limits_and_nothing_stored(keyed: LiveServer) -> None:
    with httpx.Client(base_url=keyed.url, timeout=20) as c:
        assert c.head("/").status_code == 200  # Claude Code's probe
        anthropic_error(c.get("/v1/messages"), 405, "invalid_request_error")
        anthropic_error(c.post("/v1/messages/batches", json={}), 404, "not_found_error")
        message = anthropic_error(c.post("/v1/messages", json=HI), 401, "authentication_error")
        assert "x-api-key" in message
        r = c.post("/v1/messages?beta=true", json=HI,
                   headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})  # fmt: skip
        assert r.status_code == 200 and r.json()["content"][0]["text"] == "Echo: hi"
        assert r.headers["x-ratelimit-limit-requests"] == "2"
        # Not stored: the response behind the message is not found.
        response_id = "resp_" + r.json()["id"].removeprefix("msg_")
        got = c.get(f"/v1/responses/{response_id}", headers={"authorization": f"Bearer {KEY}"})
        assert got.status_code == 404
        bearer = {"authorization": f"Bearer {KEY}"}
        anthropic_error(
            c.post("/v1/messages", json={**HI, "model": "nope"}, headers=bearer),
            404,
            "not_found_error",
        )
        message = anthropic_error(
            c.post("/v1/messages", json={**HI, "max_tokens": "many"}, headers=bearer),
            400,
            "invalid_request_error",
        )
        assert "max_tokens" in message
        assert c.post("/v1/messages", json=HI, headers=bearer).status_code == 200
        anthropic_error(c.post("/v1/messages", json=HI, headers=bearer), 429, "rate_limit_error")


def test_the_sdk_raises_on_a_bad_field_and_counts_tokens(keyed: LiveServer) -> None:
    sdk = anthropic.Anthropic(api_key=KEY, base_url=keyed.url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(
            model="echo", max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "text"}]}],  # type: ignore[list-item,typeddict-item]
        )  # fmt: skip
    assert "messages[0].content[0].text" in bad.value.message
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    short = sdk.messages.count_tokens(model="echo", messages=[{"role": "user", "content": "hi"}])
    long = sdk.messages.count_tokens(
        model="echo", messages=[{"role": "user", "content": "hi " * 400}], system="Be brief."
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert 290 <= long.input_tokens <= 320  # 1200 bytes of text / 4, plus framing
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "hi"}])


async def test_upstream_failures_before_and_after_the_first_byte() -> None:
    replies = [Reply.error(400, "bad"), Reply(fixture("anthropic", "error")), Reply.error(503, "x")]
    async with FakeUpstream(*replies) as upstream:
        engine = Engine(ProviderRegistry(router_for("anthropic", upstream.url)))
        try:
            with LiveServer(engine) as server:
                async with httpx.AsyncClient(base_url=server.url, timeout=20) as c:
                    body = {**HI, "model": "m"}
                    r = await c.post("/v1/messages", json=body)
                    anthropic_error(r, 400, "invalid_request_error")  # the upstream's 400
                    r = await c.post("/v1/messages", json=body)  # fails after some text
                    message = anthropic_error(r, 502, "api_error")  # an upstream failure: 502
                    assert "Overloaded" in message
                    r = await c.post("/v1/messages", json={**body, "stream": True})
                    anthropic_error(r, 502, "api_error")  # the upstream's 503s, retried
        finally:
            await engine.registry.aclose()


async def test_a_client_disconnect_reaches_the_upstream() -> None:
    body = fixture("chat_completions", "text")
    async with FakeUpstream(Reply(body, stall_after=len(body) // 2)) as upstream:
        engine = Engine(ProviderRegistry(router_for("chat_completions", upstream.url)))
        try:
            with LiveServer(engine) as server:
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                    req = {**HI, "model": "m", "stream": True}
                    async with c.stream("POST", "/v1/messages", json=req) as r:
                        async for chunk in r.aiter_bytes():
                            if b"message_start" in chunk:
                                break
                await asyncio.wait_for(upstream.disconnected.wait(), 10)
        finally:
            await engine.registry.aclose()


def test_echo_stops_at_a_stop_sequence(keyed: LiveServer) -> None:
    sdk = anthropic.Anthropic(api_key=KEY, base_url=keyed.url, max_retries=0)
    ask = [{"role": "user", "content": "one two three"}]
    with sdk.messages.stream(model="echo", max_tokens=50, messages=ask,  # type: ignore[arg-type]
                             stop_sequences=["zzz", " three", " two"]) as stream:  # fmt: skip
        message = stream.get_final_message()
    # echo cuts its reply (it does not say which sequence did, as Chat Completions does not)
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.content[0].text == "Echo: one"  # type: ignore[union-attr]


@pytest.mark.parametrize("dialect", ["chat_completions", "anthropic", "responses"])
async def test_stop_sequences_reach_each_upstream(dialect: str) -> None:
    """Chat Completions gets `stop`, Anthropic `stop_sequences` (and says which one
    stopped); the Responses API has none: left out, with a warning."""
    reply = fixture(dialect, "text").replace(
        b'"stop_reason":"end_turn","stop_sequence":null',
        b'"stop_reason":"stop_sequence","stop_sequence":"END"',
    )
    async with FakeUpstream(Reply(reply)) as upstream:
        engine = Engine(ProviderRegistry(router_for(dialect, upstream.url)))
        try:
            with LiveServer(engine) as server:
                async with httpx.AsyncClient(base_url=server.url, timeout=20) as c:
                    body = {**HI, "model": "m", "stop_sequences": ["END"]}
                    r = await c.post("/v1/messages", json=body)
        finally:
            await engine.registry.aclose()
    assert r.status_code == 200, r.text
    sent = upstream.requests[-1].body
    message = r.json()
    if dialect == "chat_completions":
        assert sent["stop"] == ["END"]
        assert message["stop_reason"] == "end_turn"  # Chat Completions does not say which
    elif dialect == "anthropic":
        assert sent["stop_sequences"] == ["END"]
        assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    else:
        assert "stop" not in sent
        assert "`stop` was not sent" in r.headers["x-respgate-warning"]


# ---------------------------------------------------------------- the translation

CLAUDE_CODE = {  # the shape of Claude Code 2.1.197's first request (trimmed)
    "model": "echo",
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            {"type": "text", "text": "echo hello", "cache_control": {"type": "ephemeral"}},
        ]},
    ],
    "tools": [{"name": "Bash", "description": "Run", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}},
        "required": ["command"]}}],
    "metadata": {"user_id": "{\"device_id\":\"d\"}"},
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "betas": ["claude-code-20250219"],
}  # fmt: skip


def parse(body: dict[str, Any]):
    return parse_messages_request(json.dumps(body).encode())  # json: any integer


def test_claude_codes_request() -> None:
    req = parse(CLAUDE_CODE)
    assert (
        req.instructions == "x-anthropic-billing-header: cc_version=2.1.197\n\nYou are Claude Code."
    )
    assert req.items == [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "<system-reminder>ctx</system-reminder>"},
        {"type": "input_text", "text": "echo hello"},
    ]}]  # fmt: skip
    assert req.tools == [{"type": "function", "name": "Bash", "description": "Run",
                          "parameters": CLAUDE_CODE["tools"][0]["input_schema"], "strict": None}]  # fmt: skip
    assert req.reasoning is not None and req.reasoning.effort == "high"
    assert (req.user, req.max_output_tokens, req.stream, req.store) == (
        '{"device_id":"d"}',
        32000,
        True,
        False,
    )


def test_a_whole_conversation_becomes_items_in_block_order() -> None:
    req = parse({**HI, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "AAAA"}}, {"type": "text", "text": "what?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "rg1.x"},
            {"type": "redacted_thinking", "data": "rg1.y"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "look", "input": {"q": 1}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "seen", "is_error": True},
            {"type": "text", "text": "and?"}]},
    ]})  # fmt: skip
    assert req.items == [
        {"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            {"type": "input_text", "text": "what?"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}],
         "encrypted_content": "rg1.x"},
        {"type": "reasoning", "summary": [], "encrypted_content": "rg1.y"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "t1", "name": "look", "arguments": '{"q":1}'},
        {"type": "function_call_output", "call_id": "t1", "output": "Error: seen"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and?"}]},
    ]  # fmt: skip


TOOL = {"name": "f", "input_schema": {"type": "object"}}


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "tool", "name": "f"}, {"type": "function", "name": "f"}, None),
        ({"type": "none"}, "none", None),
    ],
)
def test_tool_choice(choice: dict, expected: Any, parallel: bool | None) -> None:
    req = parse({**HI, "tools": [TOOL], "tool_choice": choice})
    assert (req.tool_choice, req.parallel_tool_calls) == (expected, parallel)


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "minimal"), (2048, "low"), (3000, "medium"), (20000, "xhigh")]
)
def test_a_thinking_budget_is_the_smallest_effort_that_covers_it(budget: int, effort: str) -> None:
    req = parse(
        {**HI, "max_tokens": 40000, "thinking": {"type": "enabled", "budget_tokens": budget}}
    )
    assert req.reasoning is not None and req.reasoning.effort == effort


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
         "messages[0].content[0].source"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ({"tools": [{"name": "f", "input_schema": {"type": 3}}]}, "tools[0].input_schema.type"),
        ({"output_config": {"format": {"type": "json_schema", "schema": {"properties": []}}}},
         "output_config.format.schema.properties"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "g"}}, "tool_choice.name"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {"n": 2**70}}]}]},
         "messages[0].content[0].input.n"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(change: dict, param: str) -> None:
    body = {k: v for k, v in {**HI, **change}.items() if v is not None}
    with pytest.raises(ApiError) as err:
        parse(body)
    assert err.value.status == 400 and err.value.param == param
    assert param.rpartition(".")[2].split("[")[0] in err.value.message


def test_count_tokens_is_a_quarter_of_the_bytes() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}
    req = parse_count_tokens_request(orjson.dumps(body))
    assert count_tokens(req) == (len(orjson.dumps("x" * 400)) + 16) // 4
