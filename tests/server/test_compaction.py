"""Compaction over real HTTP and WebSocket: `POST /v1/responses/compact` (the openai
SDK's `responses.compact`), compaction items back as input on another replica, forged,
tampered and foreign items refused, and Codex's `compaction_trigger` turns."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from websockets.asyncio.client import connect

from respgate.config import Config, KeyConfig, RouteConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.providers.router import Router
from respgate.seal import Sealer
from respgate.store.keys import ApiKeys
from tests.providers.fake_upstream import FakeUpstream, Reply
from tests.providers.support import provider
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse
from tests.support.stores import sqlite_engine

KEY_A, KEY_B = "sk-compact-tenant-a-0123456789", "sk-compact-tenant-b-0123456789"
HISTORY = [
    {"type": "message", "role": "user", "content": "We launch on Tuesday; notify support."},
    {"type": "message", "role": "assistant", "content": "Understood: Tuesday, support first."},
]
SUMMARY = "Launch is Tuesday; support is told first."


def chat_sse(text: str) -> bytes:
    """A Chat Completions stream answering `text`."""
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 9}},
    ]
    frames = [b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", **c})
              for c in chunks]  # fmt: skip
    return b"\n\n".join([*frames, b"data: [DONE]", b""])


def upstream_engine(url: str, seal_key: bytes | None = None) -> Engine:
    config = Config({"up": provider("up", "chat_completions", url)}, [RouteConfig("m", "up")])
    return Engine(ProviderRegistry(Router(config)), seal_key=seal_key)


def keys() -> ApiKeys:
    return ApiKeys.from_config([KeyConfig(tenant="a", key=KEY_A), KeyConfig(tenant="b", key=KEY_B)])


@pytest.fixture
def echo() -> Iterator[LiveServer]:
    with LiveServer(Engine(ProviderRegistry()), keys=keys()) as server:
        yield server


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_sdk_compacts_a_conversation(echo: LiveServer) -> None:
    async with openai.AsyncOpenAI(api_key=KEY_A, base_url=f"{echo.url}/v1") as client:
        compacted = await client.responses.compact(
            model="echo",
            input=HISTORY,
            prompt_cache_key="k",  # type: ignore[arg-type]
        )
    assert compacted.object == "response.compaction"
    types = [item.type for item in compacted.output]
    assert types == ["message", "compaction"]  # the user message kept, then the summary
    item = compacted.output[-1]
    assert item.encrypted_content.startswith("rg1.")  # type: ignore[union-attr]
    assert "Tuesday" not in item.encrypted_content  # type: ignore[union-attr]
    assert compacted.usage is not None and compacted.usage.output_tokens > 0


async def test_bad_compact_bodies_are_400s_naming_the_param(echo: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=echo.url, headers=auth(), timeout=10) as c:
        missing = await c.post("/v1/responses/compact", json={"input": HISTORY})
        bad_item = await c.post("/v1/responses/compact", json={"model": "echo", "input": [{}]})
        unknown = await c.post("/v1/responses/compact", json={"model": "nope", "input": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
    assert bad_item.status_code == 400 and bad_item.json()["error"]["param"] == "input[0].type"
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"


async def test_the_summary_comes_back_on_another_replica() -> None:
    """Replica one compacts (the routed model writes the summary); replica two, sharing
    only the seal key, turns the compaction item back into that summary upstream."""
    key = os.urandom(32)
    async with FakeUpstream(Reply(chat_sse(SUMMARY))) as up:
        with (
            LiveServer(upstream_engine(up.url, key)) as one,
            LiveServer(upstream_engine(up.url, key)) as two,
        ):
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.post(f"{one.url}/v1/responses/compact",
                                 json={"model": "m", "input": HISTORY, "instructions": "Be brief."})  # fmt: skip
                assert r.status_code == 200, r.text
                output = r.json()["output"]
                asked = up.requests[-1].body
                # the context went up as it is, then the summary request
                assert [m["role"] for m in asked["messages"]] == [
                    "system", "user", "assistant", "user"
                ]  # fmt: skip
                assert "Be brief." in asked["messages"][0]["content"]
                assert "compacting" in asked["messages"][0]["content"]
                r = await c.post(f"{two.url}/v1/responses", json={
                    "model": "m", "store": False,
                    "input": [*output, {"type": "message", "role": "user", "content": "Go on"}],
                })  # fmt: skip
                assert r.status_code == 200, r.text
    sent = up.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "user", "user"]
    assert SUMMARY in sent[1]["content"]  # the compaction item became its summary
    assert "rg1." not in json.dumps(sent)


def _tamper(blob: str) -> str:
    middle = len(blob) // 2
    return blob[:middle] + ("A" if blob[middle] != "A" else "B") + blob[middle + 1 :]


async def test_forged_tampered_and_foreign_items_are_400s(echo: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=echo.url, timeout=10) as c:
        r = await c.post("/v1/responses/compact", headers=auth(KEY_A),
                         json={"model": "echo", "input": HISTORY})  # fmt: skip
        item = r.json()["output"][-1]
        cases = {
            "forged": {**item, "encrypted_content": "gAAAAABforged"},
            "tampered": {**item, "encrypted_content": _tamper(item["encrypted_content"])},
            "another key": {
                **item,
                "encrypted_content": Sealer(os.urandom(32)).seal(
                    "compaction", "a", {"summary": "x"}
                ),
            },
        }
        for name, bad in cases.items():
            for stream in (False, True):
                r = await c.post("/v1/responses", headers=auth(KEY_A), json={
                    "model": "echo", "stream": stream, "input": [*HISTORY, *HISTORY, bad]})  # fmt: skip
                assert r.status_code == 400, (name, r.text)
                error = r.json()["error"]
                assert error["param"] == "input[4].encrypted_content", name
                assert error["code"] == "invalid_encrypted_content"
        # tenant b cannot use tenant a's item, here or on the compact endpoint
        for path, body in (
            ("/v1/responses", {"model": "echo", "input": [item]}),
            ("/v1/responses/compact", {"model": "echo", "input": ["x", item][1:]}),
        ):
            r = await c.post(path, headers=auth(KEY_B), json=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == "input[0].encrypted_content"
            assert "another tenant" in r.json()["error"]["message"]
        # and tenant a can
        r = await c.post("/v1/responses", headers=auth(KEY_A),
                         json={"model": "echo", "input": [item, {"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 200


def _compaction_items(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in response["output"] if i["type"] == "compaction"]


CODEX_TOOL = {"type": "function", "name": "exec_command", "parameters": {"type": "object"}}


async def test_a_compaction_trigger_turn_streams_one_compaction_item() -> None:
    """Codex's remote compaction v2: the whole history plus `compaction_trigger` in an
    ordinary streamed `POST /v1/responses`; exactly one `compaction` output item."""
    async with FakeUpstream(Reply(chat_sse(SUMMARY))) as up:
        with LiveServer(upstream_engine(up.url)) as server:
            body = {
                "model": "m", "stream": True, "store": False, "tools": [CODEX_TOOL],
                "include": ["reasoning.encrypted_content"],
                "input": [*HISTORY, {"type": "compaction_trigger"}],
            }  # fmt: skip
            headers = {"x-codex-beta-features": "remote_compaction_v2"}
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.post(f"{server.url}/v1/responses", json=body, headers=headers)
                assert r.status_code == 200, r.text
                events = parse_sse(r.content)
                assert_valid_stream(events)
                final = events[-2]["response"]
                assert final["status"] == "completed"
                assert [i["type"] for i in final["output"]] == ["compaction"]
                done = [e for e in events if isinstance(e, dict)
                        and e["type"] == "response.output_item.done"]  # fmt: skip
                assert [e["item"]["type"] for e in done] == ["compaction"]
                sent = up.requests[-1].body
                assert sent["tool_choice"] == "none"  # tools kept for the cache, not called
                assert "compaction_trigger" not in json.dumps(sent)
                # Codex's next turn: retained messages, then the compaction item
                nxt = {"model": "m", "store": False, "input": [
                    HISTORY[0], *final["output"], {"role": "user", "content": "next"}]}  # fmt: skip
                r = await c.post(f"{server.url}/v1/responses", json=nxt)
                assert r.status_code == 200, r.text
    assert SUMMARY in json.dumps(up.requests[-1].body["messages"])


async def test_a_compaction_trigger_over_websocket_and_compact_output_as_input(
    echo: LiveServer,
) -> None:
    async with connect(echo.ws_url, additional_headers=auth()) as ws:
        await ws.send(json.dumps({"type": "response.create", "model": "echo", "store": False,
                                  "input": [*HISTORY, {"type": "compaction_trigger"}]}))  # fmt: skip
        events = await _read_turn(ws)
        final = events[-1]["response"]
        assert final["status"] == "completed"
        (item,) = _compaction_items(final)
        await ws.send(json.dumps({"type": "response.create", "model": "echo", "store": False,
                                  "input": [item, {"role": "user", "content": "on we go"}]}))  # fmt: skip
        events = await _read_turn(ws)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Echo: on we go"


async def _read_turn(ws: Any) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        events.append(event)
        if event["type"] in ("response.completed", "response.failed", "error"):
            return events


async def test_codex_aliases_of_the_compaction_item(echo: LiveServer) -> None:
    """Codex also reads `compaction_summary` and `context_compaction` items: they open
    the same way (a forged one is a 400), and one without content is left out."""
    hi = {"role": "user", "content": "hi"}
    async with httpx.AsyncClient(base_url=echo.url, headers=auth(), timeout=10) as c:
        r = await c.post("/v1/responses/compact", json={"model": "echo", "input": HISTORY})
        blob = r.json()["output"][-1]["encrypted_content"]
        for kind in ("compaction_summary", "context_compaction"):
            good = {"type": kind, "encrypted_content": blob}
            forged = {"type": kind, "encrypted_content": "rg1.forged"}
            ok = await c.post("/v1/responses", json={"model": "echo", "input": [good, hi]})
            bad = await c.post("/v1/responses", json={"model": "echo", "input": [forged, hi]})
            assert ok.status_code == 200, ok.text
            assert bad.status_code == 400
            assert bad.json()["error"]["param"] == "input[0].encrypted_content"
        empty = {"type": "context_compaction"}
        r = await c.post("/v1/responses", json={"model": "echo", "input": [empty, hi]})
        assert r.status_code == 200, r.text


async def test_the_key_kept_in_the_store_survives_a_restart(tmp_path) -> None:
    """No key configured: the first start keeps one in the store, so an item made before
    a restart still opens after it (as on every replica sharing a PostgreSQL store)."""
    body = {"model": "echo", "input": HISTORY}
    with LiveServer(sqlite_engine(tmp_path)) as first:
        async with httpx.AsyncClient(timeout=10) as c:
            output = (await c.post(f"{first.url}/v1/responses/compact", json=body)).json()["output"]
    with LiveServer(sqlite_engine(tmp_path)) as second:
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(f"{second.url}/v1/responses", json={
                "model": "echo", "input": [*output, {"role": "user", "content": "next"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    with LiveServer(Engine(ProviderRegistry())) as keyless:  # a process with its own key
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(f"{keyless.url}/v1/responses", json={"model": "echo", "input": output})
    assert r.status_code == 400
    assert "another key" in r.json()["error"]["message"]
