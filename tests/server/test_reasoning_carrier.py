"""Reasoning that survives `store: false`: a reasoning item's `encrypted_content` is
respgate's sealed carrier, restored for the provider that made it (per dialect, through
the real server and fake upstreams) and never handed to another provider or tenant."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from respgate.config import Config, KeyConfig, RouteConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.providers.router import Router
from respgate.store.keys import ApiKeys
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import provider
from tests.support.live import LiveServer
from tests.support.stores import sqlite_engine

INCLUDE = ["reasoning.encrypted_content"]
SIGNATURE = "EqQBCkgIARABGAIiQL+sig/=="  # tests/fixtures/anthropic/thinking_then_text.sse
OPENAI_BLOB = "gAAAAB-opaque"  # tests/fixtures/responses/reasoning_tools.sse
FIXTURES = {
    "anthropic": "thinking_then_text",
    "responses": "reasoning_tools",
    "chat_completions": "reasoning_then_text",
}


def engine_for(upstreams: dict[str, tuple[str, str]], **options: Any) -> Engine:
    """Model NAME served by provider NAME of (kind, url)."""
    providers = {name: provider(name, kind, url, **options)
                 for name, (kind, url) in upstreams.items()}  # fmt: skip
    routes = [RouteConfig(name, name) for name in upstreams]
    return Engine(ProviderRegistry(Router(Config(providers, routes))))


async def post(server: LiveServer, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(f"{server.url}/v1/responses", json=body, headers=headers)


def reasoning_of(output: list[dict[str, Any]]) -> dict[str, Any]:
    return next(item for item in output if item["type"] == "reasoning")


def without_plain_reasoning(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output as a client may send it back: reasoning text trimmed, the carrier kept."""
    return [{k: v for k, v in item.items() if k != "content"} | {"summary": []}
            if item.get("type") == "reasoning" else item for item in output]  # fmt: skip


@pytest.mark.parametrize("kind", ["anthropic", "responses", "chat_completions"])
async def test_reasoning_round_trips_unstored(kind: str) -> None:
    async with FakeUpstream(Reply(fixture(kind, FIXTURES[kind]))) as up:
        with LiveServer(engine_for({"m": (kind, up.url)}, send_reasoning=True)) as server:
            first = await post(server, {"model": "m", "store": False, "include": INCLUDE,
                                        "input": "What is 6 x 7?"})  # fmt: skip
            assert first.status_code == 200, first.text
            output = first.json()["output"]
            blob = reasoning_of(output)["encrypted_content"]
            assert blob.startswith("rg1.")
            assert SIGNATURE not in blob and OPENAI_BLOB not in blob
            history = [{"role": "user", "content": "What is 6 x 7?"}, *output]
            second = await post(server, {"model": "m", "store": False, "include": INCLUDE,
                                         "input": [*without_plain_reasoning(history),
                                                   {"role": "user", "content": "Sure?"}]})  # fmt: skip
            assert second.status_code == 200, second.text
            assert "x-respgate-warning" not in second.headers
    sent = up.requests[-1].body
    assert "rg1." not in json.dumps(sent)  # the carrier never goes upstream
    if kind == "anthropic":
        assistant = sent["messages"][1]
        assert assistant["role"] == "assistant"
        assert assistant["content"][0] == {
            "type": "thinking", "thinking": "Let me think.", "signature": SIGNATURE
        }  # fmt: skip
    elif kind == "responses":
        (reasoning,) = [i for i in sent["input"] if i["type"] == "reasoning"]
        assert reasoning["encrypted_content"] == OPENAI_BLOB
        assert "reasoning.encrypted_content" in sent["include"]
    else:
        assistant = sent["messages"][1]
        assert assistant["role"] == "assistant"
        assert assistant["reasoning_content"] == "Let me think."


async def test_chat_completions_get_no_reasoning_unless_configured() -> None:
    kind = "chat_completions"
    async with FakeUpstream(Reply(fixture(kind, FIXTURES[kind]))) as up:
        with LiveServer(engine_for({"m": (kind, up.url)})) as server:
            first = await post(server, {"model": "m", "store": False, "include": INCLUDE,
                                        "input": "q"})  # fmt: skip
            output = first.json()["output"]
            again = [*output, {"role": "user", "content": "again"}]
            await post(server, {"model": "m", "store": False, "input": again})
    assert "reasoning_content" not in json.dumps(up.requests[-1].body)


async def test_encrypted_content_only_when_included_but_always_kept(tmp_path) -> None:
    """Without `include` the wire has no `encrypted_content`, yet a stored chain still
    gives Anthropic its signature back."""
    async with FakeUpstream(Reply(fixture("anthropic", FIXTURES["anthropic"]))) as up:
        config = Config({"m": provider("m", "anthropic", up.url)}, [RouteConfig("m", "m")])
        engine = sqlite_engine(tmp_path)
        engine.registry = ProviderRegistry(Router(config))
        with LiveServer(engine) as server:
            first = await post(server, {"model": "m", "input": "q"})
            assert "encrypted_content" not in reasoning_of(first.json()["output"])
            # GET shows the kept carrier only when its `include` asks, as OpenAI's does
            url = f"{server.url}/v1/responses/{first.json()['id']}"
            async with httpx.AsyncClient(timeout=10) as c:
                plain, included = await c.get(url), await c.get(url, params={"include": INCLUDE})
            assert "encrypted_content" not in reasoning_of(plain.json()["output"])
            assert reasoning_of(included.json()["output"])["encrypted_content"].startswith("rg1.")
            assert plain.json()["output"][1:] == included.json()["output"][1:]  # the rest as is
            second = await post(server, {"model": "m", "input": "again",
                                         "previous_response_id": first.json()["id"]})  # fmt: skip
            assert second.status_code == 200, second.text
    assert SIGNATURE in json.dumps(up.requests[-1].body["messages"][1])


async def test_a_provider_switch_drops_the_other_providers_blob() -> None:
    """A session that moved from an OpenAI model to Claude: the OpenAI reasoning blob is
    not sent to Anthropic as a signature; the response says so in a warning."""
    async with (
        FakeUpstream(Reply(fixture("responses", FIXTURES["responses"]))) as openai_up,
        FakeUpstream(Reply(fixture("anthropic", "text"))) as claude_up,
    ):
        engine = engine_for({"gpt": ("responses", openai_up.url),
                             "claude": ("anthropic", claude_up.url)})  # fmt: skip
        with LiveServer(engine) as server:
            first = await post(server, {"model": "gpt", "store": False, "include": INCLUDE,
                                        "input": "weather?"})  # fmt: skip
            output = [i for i in first.json()["output"] if i["type"] == "reasoning"]
            second = await post(server, {"model": "claude", "store": False, "include": INCLUDE,
                                         "input": [*output, {"role": "user", "content": "hi"}]})  # fmt: skip
            assert second.status_code == 200, second.text
    warning = second.headers["x-respgate-warning"]
    assert "'gpt'" in warning and "'claude'" in warning
    sent = json.dumps(claude_up.requests[-1].body)
    assert OPENAI_BLOB not in sent and "signature" not in sent and "rg1." not in sent


async def test_another_tenants_blob_is_dropped_with_a_warning() -> None:
    keys = ApiKeys.from_config([KeyConfig(tenant="a", key="sk-carrier-a-0123456789"),
                                KeyConfig(tenant="b", key="sk-carrier-b-0123456789")])  # fmt: skip
    with LiveServer(Engine(ProviderRegistry()), keys=keys) as server:
        body = {"model": "echo", "store": False, "include": INCLUDE, "input": "x",
                "reasoning": {"effort": "low"}}  # fmt: skip
        first = await post(server, body, "sk-carrier-a-0123456789")
        item = reasoning_of(first.json()["output"])
        assert item["encrypted_content"].startswith("rg1.")
        again = {**body, "input": [item, {"role": "user", "content": "y"}]}
        theirs = await post(server, again, "sk-carrier-b-0123456789")
        ours = await post(server, again, "sk-carrier-a-0123456789")
    assert theirs.status_code == 200, theirs.text
    assert "another tenant" in theirs.headers["x-respgate-warning"]
    assert ours.status_code == 200 and "x-respgate-warning" not in ours.headers
