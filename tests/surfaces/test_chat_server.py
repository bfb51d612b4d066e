"""/v1/chat/completions on the same gateway as /v1/responses: failures end the stream the
way Chat Completions clients understand, a disconnect stops the upstream, the call is
stored only when asked, and it goes through the same keys, limits, observers and metrics."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageCustomToolCall

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.limits import Limits
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store
from respgate.store.keys import ApiKeys
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.server.test_metrics import KEYS as METRIC_KEYS
from tests.server.test_metrics import TEAM, moved, scrape, scrape_until, with_metrics
from tests.server.test_observers import Recorder
from tests.support.live import LiveServer
from tests.surfaces.chat_support import checked

HI = [{"role": "user", "content": "hi there you"}]


@pytest.fixture
async def upstream_engine() -> AsyncIterator[Any]:
    made: list[Engine] = []

    def make(kind: str, url: str, **opts: Any) -> Engine:
        made.append(Engine(ProviderRegistry(router_for(kind, url, **opts))))
        return made[-1]

    yield make
    for engine in made:
        await engine.registry.aclose()


async def post_chat(server: LiveServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        return await c.post("/v1/chat/completions", json=body, headers=headers)


@pytest.mark.parametrize("kind", ["chat_completions", "anthropic", "responses"])
async def test_an_upstream_cut_mid_stream_ends_with_an_error_then_done(
    kind: str, upstream_engine: Any
) -> None:
    body = fixture(kind, "text")
    async with FakeUpstream(Reply(body, drop_after=body.rindex(b'"lo!"'))) as upstream:
        with LiveServer(upstream_engine(kind, upstream.url)) as server:
            r = await post_chat(server, {"model": "m", "messages": HI, "stream": True})
            assert r.status_code == 200
            frames = checked(r.content)
            assert frames[-2]["error"]["code"].startswith("upstream")
            assert frames[1]["choices"][0]["delta"] == {"content": "Hel"}  # what came first

            # The openai SDK raises on the error frame after the text it got.
            sdk = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
            got = []
            with pytest.raises(openai.APIError, match="mid-stream"):
                async for chunk in await sdk.chat.completions.create(
                    model="m",
                    messages=HI,
                    stream=True,  # type: ignore[arg-type]
                ):
                    got.append(chunk.choices[0].delta.content)
            assert "Hel" in got

            # Without streaming the failure is an error status, never a 200.
            with pytest.raises(openai.APIStatusError) as failed:
                await sdk.chat.completions.create(model="m", messages=HI)  # type: ignore[arg-type]
            assert failed.value.status_code == 502
            assert failed.value.body["code"].startswith("upstream")  # type: ignore[index]


async def test_a_scripted_echo_failure_and_a_refusal(tmp_path: Path) -> None:
    with LiveServer(Engine(ProviderRegistry())) as server:
        failing = {
            "model": "echo",
            "messages": HI,
            "stream": True,
            "metadata": {"echo_scenario": "fail"},
        }
        frames = checked((await post_chat(server, failing)).content)
        assert frames[-2]["error"]["code"] == "server_error"
        r = await post_chat(server, {**failing, "stream": False})
        assert r.status_code == 500 and r.json()["error"]["code"] == "server_error"
        refusing = {"model": "echo", "messages": HI, "metadata": {"echo_scenario": "refusal"}}
        message = (await post_chat(server, refusing)).json()["choices"][0]["message"]
        assert message["refusal"] == "I can't help with that." and message["content"] is None


async def test_max_tokens_ends_with_length_and_stop_with_stop(tmp_path: Path) -> None:
    with LiveServer(Engine(ProviderRegistry())) as server:
        body = {"model": "echo", "messages": HI, "max_tokens": 2, "stream": True}
        frames = checked((await post_chat(server, body)).content)
        assert frames[-2]["choices"][0]["finish_reason"] == "length"
        body = {"model": "echo", "messages": HI, "stop": ["you", "there"]}
        choice = (await post_chat(server, body)).json()["choices"][0]
        assert (choice["message"]["content"], choice["finish_reason"]) == ("Echo: hi ", "stop")


async def test_a_client_disconnect_stops_the_upstream(upstream_engine: Any) -> None:
    body = fixture("chat_completions", "text")
    async with FakeUpstream(Reply(body, stall_after=body.index(b'"lo!"'))) as upstream:
        with LiveServer(upstream_engine("chat_completions", upstream.url)) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                req = {"model": "m", "messages": HI, "stream": True}
                async with c.stream("POST", "/v1/chat/completions", json=req) as r:
                    async for chunk in r.aiter_bytes():
                        if b'"Hel"' in chunk:
                            break
            await asyncio.wait_for(upstream.disconnected.wait(), 10)


async def test_stop_sequences_reach_the_upstream(upstream_engine: Any) -> None:
    for kind, field in (("chat_completions", "stop"), ("anthropic", "stop_sequences")):
        async with FakeUpstream(Reply(fixture(kind, "text"))) as upstream:
            with LiveServer(upstream_engine(kind, upstream.url)) as server:
                r = await post_chat(server, {"model": "m", "messages": HI, "stop": ["END"]})
                assert r.status_code == 200
                assert upstream.requests[-1].body[field] == ["END"]
    async with FakeUpstream(Reply(fixture("responses", "text"))) as upstream:
        with LiveServer(upstream_engine("responses", upstream.url)) as server:
            r = await post_chat(server, {"model": "m", "messages": HI, "stop": "END"})
            assert "stop" not in upstream.requests[-1].body
            assert "`stop` was not sent" in r.headers["x-respgate-warning"]


KEY = "sk-chat-team-a-0123456789"


async def test_keys_tenants_store_and_observers_are_the_gateways(tmp_path: Path) -> None:
    recorder = Recorder()
    engine = Engine(
        ProviderRegistry(),
        observers=[recorder],
        limits=Limits(),
        store=functools.partial(open_store, tmp_path / "data"),
    )
    keys = ApiKeys.from_config([KeyConfig(tenant="team-a", key=KEY, requests_per_minute=2)])
    with LiveServer(engine, keys=keys) as server:
        body = {"model": "echo", "messages": HI}
        r = await post_chat(server, body)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        auth = {"authorization": f"Bearer {KEY}"}
        unstored = (await post_chat(server, body, **auth)).json()
        stored = (await post_chat(server, {**body, "store": True}, **auth)).json()
        limited = await post_chat(server, {**body, "stream": True}, **auth)
        assert limited.status_code == 429, limited.text  # the key's limit counts chat calls
        assert limited.json()["error"]["type"] == "rate_limit_error"
        assert "retry-after" in limited.headers
        async with httpx.AsyncClient(base_url=server.url, headers=auth) as c:

            async def status_of(completion: dict[str, Any]) -> int:
                response_id = "resp_" + completion["id"].removeprefix("chatcmpl-")
                return (await c.get(f"/v1/responses/{response_id}")).status_code

            assert await status_of(unstored) == 404  # not stored unless `store: true`
            assert await status_of(stored) == 200
    finished = [info for name, info in recorder.steps if name == "finished"]
    assert [info.tenant for info in finished] == ["team-a", "team-a"]
    assert all(info.usage is not None and info.usage.get("output_tokens") for info in finished)


async def test_a_stored_tool_call_has_the_id_the_chat_client_saw(tmp_path: Path) -> None:
    engine = Engine(ProviderRegistry(), store=functools.partial(open_store, tmp_path / "data"))
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    body = {"model": "echo", "messages": HI, "tools": [tool], "store": True}
    with LiveServer(engine) as server:
        for stream in (False, True):
            r = await post_chat(server, {**body, "stream": stream})
            if stream:
                frames = checked(r.content)
                deltas = [f["choices"][0]["delta"] for f in frames[:-1] if f["choices"]]
                call = next(d["tool_calls"][0] for d in deltas if "tool_calls" in d)
                completion_id = frames[0]["id"]
            else:
                call = r.json()["choices"][0]["message"]["tool_calls"][0]
                completion_id = r.json()["id"]
            response_id = "resp_" + completion_id.removeprefix("chatcmpl-")
            async with httpx.AsyncClient(base_url=server.url) as c:
                stored = (await c.get(f"/v1/responses/{response_id}")).json()
            assert [item["call_id"] for item in stored["output"]] == [call["id"]]


REASONING = {
    "chat_completions": "reasoning_then_text",
    "anthropic": "thinking_then_text",
    "responses": "reasoning_tools",
}


@pytest.mark.parametrize("kind", sorted(REASONING))
async def test_upstream_reasoning_streams_as_reasoning_content(
    kind: str, upstream_engine: Any
) -> None:
    async with FakeUpstream(Reply(fixture(kind, REASONING[kind]))) as upstream:
        with LiveServer(upstream_engine(kind, upstream.url)) as server:
            body = {"model": "m", "messages": HI, "reasoning_effort": "high"}
            frames = checked((await post_chat(server, {**body, "stream": True})).content)
            streamed = "".join(
                f["choices"][0]["delta"].get("reasoning_content", "") for f in frames[:-1]
            )
            message = (await post_chat(server, body)).json()["choices"][0]["message"]
    assert streamed and message["reasoning_content"] == streamed
    assert streamed in ("Let me think.", "Need weather.")


async def test_logprobs_from_a_chat_upstream(upstream_engine: Any) -> None:
    async with FakeUpstream(Reply(fixture("chat_completions", "logprobs"))) as upstream:
        with LiveServer(upstream_engine("chat_completions", upstream.url)) as server:
            body = {"model": "m", "messages": HI, "logprobs": True, "top_logprobs": 2}
            frames = checked((await post_chat(server, {**body, "stream": True})).content)
            sent = upstream.requests[-1].body
            completion = (await post_chat(server, body)).json()
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    streamed = [
        e for f in frames[:-1] for e in (f["choices"][0]["logprobs"] or {}).get("content", [])
    ]
    assert streamed and streamed[0]["token"] == "Hello"
    assert completion["choices"][0]["logprobs"]["content"] == streamed


async def test_chat_calls_move_the_metrics_series() -> None:
    engine, metrics = with_metrics(ProviderRegistry())
    with LiveServer(engine, keys=METRIC_KEYS, metrics=metrics) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=TEAM) as c:
            before = await scrape(c)
            body = {"model": "echo", "messages": HI}
            streamed = await c.post(
                "/v1/chat/completions",
                json={**body, "stream": True, "stream_options": {"include_usage": True}},
            )
            usage = checked(streamed.content, include_usage=True)[-2]["usage"]
            assert (await c.post("/v1/chat/completions", json=body)).status_code == 200
            assert (await c.post("/v1/chat/completions", json={"model": "echo"})).status_code == 400
            post = {"endpoint": "/v1/chat/completions", "method": "POST"}
            after = await scrape_until(
                c,
                lambda s: (
                    moved(before, s, "respgate_requests_total", **post, model="", status="400") >= 1
                ),
            )
    assert moved(before, after, "respgate_requests_total", **post, model="echo", status="200") == 2
    for transport in ("sse", "json"):
        assert (
            moved(
                before,
                after,
                "respgate_responses_total",
                model="echo",
                transport=transport,
                status="completed",
            )
            == 1
        )
    tokens = {"model": "echo", "tenant": "team-a"}
    assert (
        moved(before, after, "respgate_tokens_total", **tokens, kind="output")
        == 2 * usage["completion_tokens"]
    )


PATCH_TOOL = {
    "type": "custom",
    "custom": {"name": "apply_patch", "description": "edit files"},
}
READ_TOOL = {
    "type": "function",
    "function": {"name": "mcp__fs__read_file", "parameters": {"type": "object"}},
}


async def test_custom_tools_through_a_chat_upstream(upstream_engine: Any) -> None:
    """A chat client's custom tool reaches a Chat Completions upstream as a function with
    one `input` string; the upstream's call comes back as a custom call, streamed and whole,
    and its result goes back as that function's result."""
    body = fixture("chat_completions", "tools_mapped")
    async with FakeUpstream(Reply(body), Reply(body), Reply(body), Reply(body)) as upstream:
        with LiveServer(upstream_engine("chat_completions", upstream.url)) as server:
            request = {"model": "m", "messages": HI, "tools": [PATCH_TOOL, READ_TOOL]}
            frames = checked((await post_chat(server, {**request, "stream": True})).content)
            fragments = [
                call
                for f in frames[:-1]
                if f["choices"]
                for call in f["choices"][0]["delta"].get("tool_calls") or ()
            ]
            # the custom call is released whole when it ends (tools.py), after the function's
            # first fragment: it is call 1
            assert {"index": 1, "id": "call_p", "type": "custom",
                    "custom": {"name": "apply_patch", "input": "*** Begin Patch"}} in fragments  # fmt: skip
            assert fragments[0]["type"] == "function"
            sent = upstream.requests[0].body
            assert sent["tools"][0]["function"]["name"] == "apply_patch"  # a function upstream

            # the openai SDK, streaming: its chunk type knows only function calls, so the
            # custom call's fields arrive untyped, as they do from OpenAI
            sdk = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)
            streamed = [
                call
                async for chunk in await sdk.chat.completions.create(**request, stream=True)  # type: ignore[call-overload]
                if chunk.choices
                for call in chunk.choices[0].delta.tool_calls or ()
            ]
            custom = next(c for c in streamed if c.type == "custom")
            assert custom.model_extra == {
                "custom": {"name": "apply_patch", "input": "*** Begin Patch"}
            }

            # the openai SDK, whole: a typed custom call
            done = await sdk.chat.completions.create(**request)  # type: ignore[call-overload]
            call = done.choices[0].message.tool_calls[1]  # type: ignore[index]
            assert isinstance(call, ChatCompletionMessageCustomToolCall)
            assert (call.custom.name, call.custom.input) == ("apply_patch", "*** Begin Patch")
            assert done.choices[0].finish_reason == "tool_calls"

            # the call and its result sent back: a custom call and its output upstream
            turn = [
                *HI,
                {"role": "assistant", "tool_calls": [call.model_dump(exclude_none=True)]},
                {"role": "tool", "tool_call_id": "call_p", "content": "applied"},
            ]
            await sdk.chat.completions.create(**{**request, "messages": turn})  # type: ignore[call-overload]
            messages = upstream.requests[3].body["messages"]
            assert messages[1]["tool_calls"][0]["function"] == {
                "name": "apply_patch",
                "arguments": '{"input":"*** Begin Patch"}',
            }
            assert messages[2] == {"role": "tool", "tool_call_id": "call_p", "content": "applied"}


@pytest.mark.parametrize("send_reasoning", [True, False])
async def test_reasoning_content_sent_back_reaches_a_chat_upstream_that_takes_it(
    send_reasoning: bool, upstream_engine: Any
) -> None:
    """An assistant message's `reasoning_content` (as vLLM/DeepSeek clients send it back)
    goes upstream as `reasoning_content` when the provider is set to send reasoning
    (`send_reasoning`), and is dropped otherwise."""
    async with FakeUpstream(Reply(fixture("chat_completions", "text"))) as upstream:
        engine = upstream_engine("chat_completions", upstream.url, send_reasoning=send_reasoning)
        with LiveServer(engine) as server:
            thought = {"role": "assistant", "content": "Hello", "reasoning_content": "think"}
            body = {"model": "m", "messages": [*HI, thought, *HI]}
            assert (await post_chat(server, body)).status_code == 200
    assistant = upstream.requests[0].body["messages"][1]
    assert assistant["content"] == "Hello"
    assert assistant.get("reasoning_content") == ("think" if send_reasoning else None)
