"""The Conversations API over real HTTP with the openai SDK: `client.conversations` and
`client.conversations.items`, `conversation` on `client.responses.create` (non-streaming,
streaming, background, WebSocket), validation with `param`, and tenant isolation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.asyncio.client import connect

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.protocol.lifecycle import TERMINAL_EVENTS
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store
from respgate.store.keys import ApiKeys
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse

KEY_A = "sk-conversations-a-" + "a" * 24
KEY_B = "sk-conversations-b-" + "b" * 24


def keys() -> ApiKeys:
    return ApiKeys.from_config([KeyConfig(tenant="a", key=KEY_A), KeyConfig(tenant="b", key=KEY_B)])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    engine = Engine(ProviderRegistry(), store=lambda: open_store(tmp_path, poll_interval=0.05))
    with LiveServer(engine, keys=keys()) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0)


@pytest.fixture
def other(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_B, max_retries=0)


def texts(items: Any) -> list[tuple[str, str]]:
    return [(item.role, item.content[0].text) for item in items]


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def test_create_retrieve_update_delete(client: openai.OpenAI) -> None:
    conv = client.conversations.create(
        items=[user("hello"), {"role": "assistant", "content": "hi there"}],
        metadata={"topic": "demo"},
    )
    assert conv.id.startswith("conv_") and conv.object == "conversation"
    assert conv.metadata == {"topic": "demo"} and conv.created_at > 0
    assert client.conversations.retrieve(conv.id) == conv
    updated = client.conversations.update(conv.id, metadata={"topic": "other", "n": "2"})
    assert updated.metadata == {"topic": "other", "n": "2"} and updated.id == conv.id
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "other", "n": "2"}
    # canonical items: content as parts, ids, status
    items = client.conversations.items.list(conv.id, order="asc").data
    assert texts(items) == [("user", "hello"), ("assistant", "hi there")]
    assert [i.content[0].type for i in items] == ["input_text", "output_text"]
    assert all(i.status == "completed" and i.id.startswith("msg_") for i in items)
    deleted = client.conversations.delete(conv.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (conv.id, True, "conversation.deleted")
    for call in (
        lambda: client.conversations.retrieve(conv.id),
        lambda: client.conversations.update(conv.id, metadata={}),
        lambda: client.conversations.delete(conv.id),
        lambda: client.conversations.items.list(conv.id),
    ):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.code == "conversation_not_found"


def test_create_with_no_arguments_and_an_empty_body(client: openai.OpenAI, server) -> None:
    conv = client.conversations.create()
    assert conv.metadata == {} and client.conversations.items.list(conv.id).data == []
    r = httpx.post(f"{server.url}/v1/conversations", headers={"authorization": f"Bearer {KEY_A}"})
    assert r.status_code == 200 and r.json()["object"] == "conversation"


def test_items_create_list_retrieve_delete_and_pages(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    created = client.conversations.items.create(conv.id, items=[user(str(i)) for i in range(5)])
    assert created.object == "list" and not created.has_more
    assert [t for _, t in texts(created.data)] == [str(i) for i in range(5)]
    assert (created.first_id, created.last_id) == (created.data[0].id, created.data[-1].id)
    client.conversations.items.create(conv.id, items=[user("5"), user("6")])
    expected = [str(i) for i in range(7)]
    for order in ("asc", "desc"):
        page = client.conversations.items.list(conv.id, order=order, limit=2)
        assert page.has_more and len(page.data) == 2
        seen = [item.content[0].text for item in page]  # the SDK follows `after` = last_id
        assert seen == (expected if order == "asc" else expected[::-1])
    newest = client.conversations.items.list(conv.id, limit=1)  # default order: desc
    assert newest.data[0].content[0].text == "6" and newest.last_id == newest.data[0].id
    one = client.conversations.items.retrieve(created.data[2].id, conversation_id=conv.id)
    assert one == created.data[2]
    after_delete = client.conversations.items.delete(created.data[2].id, conversation_id=conv.id)
    assert after_delete.id == conv.id and after_delete.object == "conversation"
    left = [i.content[0].text for i in client.conversations.items.list(conv.id, order="asc")]
    assert left == ["0", "1", "3", "4", "5", "6"]
    for call in (
        lambda: client.conversations.items.retrieve(created.data[2].id, conversation_id=conv.id),
        lambda: client.conversations.items.delete(created.data[2].id, conversation_id=conv.id),
    ):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.code == "item_not_found"


def test_include_shows_encrypted_content_only_when_asked(client: openai.OpenAI) -> None:
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": "opaque-blob"}
    conv = client.conversations.create(items=[reasoning])
    plain = client.conversations.items.list(conv.id).data[0]
    assert plain.type == "reasoning" and plain.encrypted_content is None
    full = client.conversations.items.list(conv.id, include=["reasoning.encrypted_content"])
    assert full.data[0].encrypted_content == "opaque-blob"
    got = client.conversations.items.retrieve(
        plain.id, conversation_id=conv.id, include=["reasoning.encrypted_content"]
    )
    assert got.encrypted_content == "opaque-blob"


def test_responses_in_a_conversation_see_earlier_turns(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user("my name is Ada")])
    usage: list[int] = []
    for n, text in enumerate(["first", "second", "third"]):
        if n % 2:
            response = client.responses.create(model="echo", input=text, conversation=conv.id)
        else:
            response = client.responses.create(
                model="echo", input=text, conversation={"id": conv.id}
            )
        assert response.conversation is not None and response.conversation.id == conv.id
        assert response.output_text == f"Echo: {text}"
        assert response.previous_response_id is None
        usage.append(response.usage.input_tokens)
        items = client.conversations.items.list(conv.id, order="asc", limit=100).data
        # the response's own input and output items are the conversation's last two
        input_ids = [i.id for i in client.responses.input_items.list(response.id).data]
        assert [i.id for i in items[-2:]] == [*input_ids, response.output[0].id]
    assert texts(items) == [
        ("user", "my name is Ada"),
        ("user", "first"), ("assistant", "Echo: first"),
        ("user", "second"), ("assistant", "Echo: second"),
        ("user", "third"), ("assistant", "Echo: third"),
    ]  # fmt: skip
    # echo counts the words of every message it was given: the context grew each turn
    assert usage[0] < usage[1] < usage[2]


def test_streaming_and_background_turns_are_appended(client: openai.OpenAI, server) -> None:
    conv = client.conversations.create()
    r = httpx.post(
        f"{server.url}/v1/responses",
        headers={"authorization": f"Bearer {KEY_A}"},
        json={"model": "echo", "input": "streamed", "conversation": conv.id, "stream": True},
        timeout=10,
    )
    events = parse_sse(r.content)
    assert_valid_stream(events)
    assert events[-2]["response"]["conversation"] == {"id": conv.id}
    with client.responses.stream(model="echo", input="via sdk", conversation=conv.id) as stream:
        final = stream.get_final_response()
    assert final.conversation.id == conv.id
    queued = client.responses.create(
        model="echo", input="in background", conversation=conv.id, background=True
    )
    assert queued.status == "queued" and queued.conversation.id == conv.id
    deadline = time.monotonic() + 10
    while client.responses.retrieve(queued.id).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "background response did not finish"
        time.sleep(0.02)
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [t for _, t in texts(items)] == [
        "streamed", "Echo: streamed", "via sdk", "Echo: via sdk",
        "in background", "Echo: in background",
    ]  # fmt: skip


def test_store_false_still_appends_and_failed_turns_do_not(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    response = client.responses.create(
        model="echo", input="unstored", conversation=conv.id, store=False
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    failed = client.responses.create(
        model="echo",
        input="this one fails halfway",
        conversation=conv.id,
        metadata={"echo_scenario": "fail"},
    )
    assert failed.status == "failed"
    cut = client.responses.create(
        model="echo", input="one two three four", conversation=conv.id, max_output_tokens=2
    )
    assert cut.status == "incomplete"
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [t for _, t in texts(items)] == [
        "unstored", "Echo: unstored", "one two three four", "Echo: one ",
    ]  # fmt: skip
    assert items[-1].status == "incomplete"


def test_conversation_errors_name_the_param(client: openai.OpenAI) -> None:
    conv = client.conversations.create(items=[user("x")])
    held = client.conversations.items.list(conv.id).data[0].id
    cases: list[tuple[Any, int, str | None, str | None]] = [
        (lambda: client.responses.create(model="echo", input="x", conversation="conv_missing"),
         404, "conversation", "conversation_not_found"),
        (lambda: client.responses.create(model="echo", input="x", conversation=conv.id,
                                         previous_response_id="resp_1"),
         400, "conversation", "mutually_exclusive_parameters"),
        (lambda: client.responses.create(model="echo", conversation={"id": ""}),
         400, "conversation.id", None),
        (lambda: client.responses.create(
            model="echo", conversation=conv.id,
            input=[{"type": "message", "role": "user", "content": "y", "id": held}]),
         400, "input[0].id", None),
        (lambda: client.conversations.create(metadata={f"k{i}": "v" for i in range(17)}),
         400, "metadata", None),
        (lambda: client.conversations.create(metadata={"k" * 65: "v"}),
         400, "metadata." + "k" * 64 + "…", None),
        (lambda: client.conversations.update(conv.id, metadata={"k": "v" * 513}),
         400, "metadata.k", None),
        (lambda: client.conversations.create(items=[user(str(i)) for i in range(21)]),
         400, "items", None),
        (lambda: client.conversations.create(items=[{"type": "message", "role": "user"}]),
         400, "items[0].content", None),
        (lambda: client.conversations.create(items=[{"type": "nonsense"}]),
         400, "items[0].type", None),
        (lambda: client.conversations.create(items=[{"type": "item_reference", "id": "msg_x"}]),
         404, "items[0].id", "item_not_found"),
        (lambda: client.conversations.items.create(conv.id, items=[]), 400, "items", None),
        (lambda: client.conversations.items.create(
            conv.id, items=[{"type": "message", "role": "user", "content": "z", "id": held}]),
         400, "items[0].id", None),
        (lambda: client.conversations.items.list(conv.id, limit=0), 400, "limit", None),
        (lambda: client.conversations.items.list(conv.id, order="sideways"), 400, "order", None),
        (lambda: client.conversations.items.list(conv.id, include=["bogus"]),
         400, "include[0]", None),
    ]  # fmt: skip
    for call, status, param, code in cases:
        with pytest.raises(openai.APIStatusError) as err:
            call()
        body = err.value.body
        assert err.value.status_code == status, (param, body)
        assert body["param"] == param, body
        assert body["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
        if code is not None:
            assert body["code"] == code
    assert [t for _, t in texts(client.conversations.items.list(conv.id).data)] == ["x"]


def test_raw_bodies_and_unknown_routes(server: LiveServer) -> None:
    headers = {"authorization": f"Bearer {KEY_A}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        conv = http.post("/v1/conversations", json={}).json()
        bad = [
            http.post("/v1/conversations", content=b"[1]", headers={"content-type": "application/json"}),
            http.post("/v1/conversations", content=b"{", headers={"content-type": "application/json"}),
            http.post(f"/v1/conversations/{conv['id']}", json={}),  # metadata is required
            http.post(f"/v1/conversations/{conv['id']}", json={"metadata": {"k": 1}}),
            http.post(f"/v1/conversations/{conv['id']}/items", content=b"x", headers={"content-type": "text/plain"}),
            http.get(f"/v1/conversations/{conv['id']}/items", params={"limit": "many"}),
        ]  # fmt: skip
        for r in bad:
            assert r.status_code == 400, r.text
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert bad[2].json()["error"]["param"] == "metadata"
        assert bad[3].json()["error"]["param"] == "metadata.k"
        assert bad[5].json()["error"]["param"] == "limit"
        for method, path in (
            ("PUT", "/v1/conversations"),  # GET is respgate's list (docs/console.md)
            ("GET", f"/v1/conversations/{conv['id']}/nothing"),
            ("GET", f"/v1/conversations/{conv['id']}/items/a/b"),
        ):
            r = http.request(method, path)
            assert r.status_code in (404, 405), (path, r.text)
            assert r.json()["error"]["code"] in ("not_found", "method_not_allowed")
        assert http.get(f"/v1/conversations/{conv['id']}/nothing").status_code == 404
        # null metadata clears it
        http.post(f"/v1/conversations/{conv['id']}", json={"metadata": {"a": "b"}})
        cleared = http.post(f"/v1/conversations/{conv['id']}", json={"metadata": None})
        assert cleared.json()["metadata"] == {}


def test_another_tenant_sees_nothing_anywhere(client: openai.OpenAI, other: openai.OpenAI) -> None:
    """Every endpoint answers another tenant's conversation exactly as one that never existed."""
    conv = client.conversations.create(items=[user("secret")], metadata={"k": "v"})
    item_id = client.conversations.items.list(conv.id).data[0].id
    never = "conv_" + "0" * 32
    calls = [
        lambda c, cid: c.conversations.retrieve(cid),
        lambda c, cid: c.conversations.update(cid, metadata={"stolen": "yes"}),
        lambda c, cid: c.conversations.items.list(cid),
        lambda c, cid: c.conversations.items.create(cid, items=[user("injected")]),
        lambda c, cid: c.conversations.items.retrieve(item_id, conversation_id=cid),
        lambda c, cid: c.conversations.items.delete(item_id, conversation_id=cid),
        lambda c, cid: c.responses.create(model="echo", input="x", conversation=cid),
        lambda c, cid: c.responses.create(model="echo", input="x", conversation=cid, stream=True),
        lambda c, cid: c.conversations.delete(cid),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as theirs:
            call(other, conv.id)
        with pytest.raises(openai.NotFoundError) as missing:
            call(other, never)
        got, expected = theirs.value.body, missing.value.body
        assert got == {**expected, "message": expected["message"].replace(never, conv.id)}
    assert client.conversations.retrieve(conv.id).metadata == {"k": "v"}
    assert texts(client.conversations.items.list(conv.id).data) == [("user", "secret")]


async def test_the_upstream_receives_the_conversation_before_the_input(tmp_path: Path) -> None:
    """A Chat Completions upstream behind respgate: each turn's request carries every earlier
    turn of the conversation, in order, then the new input."""
    async with FakeUpstream(Reply(fixture("chat_completions", "text"))) as upstream:
        engine = Engine(
            ProviderRegistry(router_for("chat_completions", upstream.url)),
            store=lambda: open_store(tmp_path),
        )
        with LiveServer(engine, keys=keys()) as live:
            client = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key=KEY_A, max_retries=0)
            conv = await client.conversations.create(
                items=[{"type": "message", "role": "developer", "content": "be terse"}]
            )
            for text in ("one", "two", "three"):
                response = await client.responses.create(
                    model="m", input=text, conversation=conv.id, instructions="sys"
                )
                assert response.output_text == "Hello!"
            sent = [
                (
                    m["role"],
                    m["content"] if isinstance(m["content"], str) else m["content"][0]["text"],
                )
                for m in upstream.requests[-1].body["messages"]
            ]
            assert sent == [
                ("system", "sys"), ("system", "be terse"),  # developer -> system for Chat Completions
                ("user", "one"), ("assistant", "Hello!"),
                ("user", "two"), ("assistant", "Hello!"),
                ("user", "three"),
            ]  # fmt: skip
            assert len(upstream.requests) == 3
            await client.close()


async def test_websocket_turns_use_the_conversation(server: LiveServer) -> None:
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0)
    conv = await client.conversations.create(items=[user("zero")])
    headers = {"authorization": f"Bearer {KEY_A}"}
    async with connect(server.ws_url, additional_headers=headers) as ws:
        for text in ("one", "two"):
            await ws.send(
                json.dumps(
                    {
                        "type": "response.create",
                        "model": "echo",
                        "input": text,
                        "conversation": conv.id,
                    }
                )
            )
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if event["type"] in TERMINAL_EVENTS or event["type"] == "error":
                    break
            assert event["type"] == "response.completed", event
            assert event["response"]["conversation"] == {"id": conv.id}
        await ws.send(json.dumps({"type": "response.create", "model": "echo", "input": "x",
                                  "conversation": "conv_" + "0" * 32}))  # fmt: skip
        envelope = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert envelope["status"] == 404 and envelope["error"]["param"] == "conversation"
    other_tenant = {"authorization": f"Bearer {KEY_B}"}
    async with connect(server.ws_url, additional_headers=other_tenant) as ws:
        await ws.send(json.dumps({"type": "response.create", "model": "echo", "input": "x",
                                  "conversation": conv.id}))  # fmt: skip
        theirs = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert theirs["error"] == {
            **envelope["error"],
            "message": envelope["error"]["message"].replace("conv_" + "0" * 32, conv.id),
        }
    page = await client.conversations.items.list(conv.id, order="asc")
    assert [(i.role, i.content[0].text) for i in page.data] == [
        ("user", "zero"), ("user", "one"), ("assistant", "Echo: one"),
        ("user", "two"), ("assistant", "Echo: two"),
    ]  # fmt: skip
    await client.close()


def test_deleting_a_conversation_keeps_its_responses(client: openai.OpenAI) -> None:
    conv = client.conversations.create()
    response = client.responses.create(model="echo", input="kept", conversation=conv.id)
    client.conversations.delete(conv.id)
    again = client.responses.retrieve(response.id)
    assert again.output_text == "Echo: kept" and again.conversation.id == conv.id
    # continuing that response by id still works (its own stored chain)
    follow = client.responses.create(model="echo", input="more", previous_response_id=response.id)
    assert follow.output_text == "Echo: more"
    # and deleting a response keeps the conversation's copy of its items
    conv = client.conversations.create()
    response = client.responses.create(model="echo", input="copied", conversation=conv.id)
    client.responses.delete(response.id)
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [t for _, t in texts(items)] == ["copied", "Echo: copied"]


def test_without_a_store_conversations_are_refused_and_unknown() -> None:
    with LiveServer(Engine(ProviderRegistry())) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError):
            client.conversations.create()
        with pytest.raises(openai.NotFoundError) as err:
            client.conversations.retrieve("conv_1")
        assert err.value.code == "conversation_not_found"
        with pytest.raises(openai.NotFoundError) as err:
            client.responses.create(model="echo", input="x", conversation="conv_1")
        assert err.value.body["param"] == "conversation"
