"""Stored chat completions (`store: true`) served as OpenAI serves them, through the openai
SDK over real HTTP on a real SQLite store: retrieve, list (pages, `model`, `metadata`
filters), messages, update and delete, one tenant's only, chat-made responses only."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store
from respgate.store.keys import ApiKeys
from respgate.surfaces.chat.validate import fold_chunks
from tests.support.live import LiveServer
from tests.surfaces.chat_support import checked

KEY_A, KEY_B = "sk-team-a-0123456789abcdef", "sk-team-b-0123456789abcdef"
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
SYSTEM = {"role": "system", "content": "be brief"}
USER = {"role": "user", "content": "hi there"}


def sdk(server: LiveServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    engine = Engine(ProviderRegistry(), store=functools.partial(open_store, tmp_path / "data"))
    keys = ApiKeys.from_config(
        [KeyConfig(tenant="team-a", key=KEY_A), KeyConfig(tenant="team-b", key=KEY_B)]
    )
    with LiveServer(engine, keys=keys) as live:
        yield live


async def test_stored_completions_through_the_openai_sdk(server: LiveServer) -> None:
    a, b = sdk(server, KEY_A), sdk(server, KEY_B)
    chat = a.chat.completions
    first = await chat.create(
        model="echo", messages=[SYSTEM, USER], store=True, metadata={"team": "x"}
    )  # type: ignore[call-overload]
    # a streamed call with a tool call, folded from the wire
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {KEY_A}"},
            json={
                "model": "echo",
                "messages": [USER],
                "tools": [TOOL],
                "store": True,
                "stream": True,
                "stream_options": {"include_usage": True},
                "metadata": {"team": "y"},
            },
        )
    streamed = fold_chunks(checked(r.content, include_usage=True))
    await chat.create(model="echo", messages=[USER])  # type: ignore[call-overload]  # unstored
    made_by_responses = await a.responses.create(model="echo", input="hi", store=True)

    # retrieve: the very completion the client got
    got = await chat.retrieve(first.id)
    assert got.model_dump(exclude={"metadata"}) == first.model_dump(exclude={"metadata"})
    assert got.metadata == {"team": "x"}  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.get(
            f"/v1/chat/completions/{streamed['id']}",
            headers={"authorization": f"Bearer {KEY_A}"},
        )
    assert r.json() == {**streamed, "metadata": {"team": "y"}}  # tool call ids and all

    # list: chat-made, stored, this tenant's only, oldest first (by creation second, then
    # id); filters and pages
    created = {first.id: first.created, streamed["id"]: streamed["created"]}
    oldest = sorted(created, key=lambda i: (created[i], i))
    listed = await chat.list()
    assert [c.id for c in listed.data] == oldest
    shown = next(c for c in listed.data if c.id == first.id)
    assert shown.choices[0].message.content == first.choices[0].message.content
    assert [c.id for c in (await chat.list(order="desc")).data] == oldest[::-1]
    assert [c.id for c in (await chat.list(metadata={"team": "y"})).data] == [streamed["id"]]
    assert (await chat.list(model="other")).data == []
    page = await chat.list(limit=1)
    assert [c.id for c in page.data] == oldest[:1] and page.has_more
    assert [c.id async for c in chat.list(limit=1)] == oldest
    assert (await b.chat.completions.list()).data == []

    # messages: the input the call was sent, as chat messages
    messages = (await chat.messages.list(first.id)).data
    assert [(m.role, m.content) for m in messages] == [("system", "be brief"), ("user", "hi there")]
    assert [m.id for m in messages] == [f"{first.id}-0", f"{first.id}-1"]
    later = (await chat.messages.list(first.id, after=messages[0].id)).data
    assert [m.id for m in later] == [messages[1].id]

    # update: the metadata is replaced and the filter follows it
    updated = await chat.update(first.id, metadata={"team": "z"})
    assert updated.metadata == {"team": "z"}  # type: ignore[attr-defined]
    assert [c.id for c in (await chat.list(metadata={"team": "z"})).data] == [first.id]
    assert (await chat.list(metadata={"team": "x"})).data == []

    # another tenant, a Responses-made response, an id that is no completion: not found
    for missing in (
        b.chat.completions.retrieve(first.id),
        b.chat.completions.delete(first.id),
        b.chat.completions.update(first.id, metadata={}),
        b.chat.completions.messages.list(first.id),
        chat.retrieve("chatcmpl-" + made_by_responses.id.removeprefix("resp_")),
        chat.retrieve(made_by_responses.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await missing

    # delete
    deleted = await chat.delete(first.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        first.id,
        "chat.completion.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError):
        await chat.retrieve(first.id)
    assert [c.id for c in (await chat.list()).data] == [streamed["id"]]


async def test_stored_messages_of_a_tool_turn_and_bad_pages(server: LiveServer) -> None:
    chat = sdk(server, KEY_A).chat.completions
    turn = [
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    done = await chat.create(model="echo", messages=turn, tools=[TOOL], store=True)  # type: ignore[call-overload]
    messages = (await chat.messages.list(done.id)).data
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert messages[1].tool_calls[0].id == "call_1"  # type: ignore[index]
    assert messages[1].tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]
    assert messages[2].model_extra["tool_call_id"] == "call_1"  # type: ignore[index]
    assert messages[2].content == "42"
    desc = (await chat.messages.list(done.id, order="desc", limit=2)).data
    assert [m.id for m in desc] == [messages[2].id, messages[1].id]

    # a custom call and reasoning sent back come back as they were sent
    custom = {"type": "custom", "custom": {"name": "patch"}}
    patch_call = {"id": "call_2", "type": "custom", "custom": {"name": "patch", "input": "*** P"}}
    sent = [
        USER,
        {"role": "assistant", "reasoning_content": "why", "tool_calls": [patch_call]},
        {"role": "tool", "tool_call_id": "call_2", "content": "ok"},
    ]
    again = await chat.create(model="echo", messages=sent, tools=[custom], store=True)  # type: ignore[call-overload]
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.get(
            f"/v1/chat/completions/{again.id}/messages",
            headers={"authorization": f"Bearer {KEY_A}"},
        )
    assistant, tool = r.json()["data"][1:]
    assert assistant["tool_calls"] == [patch_call]
    assert assistant["reasoning_content"] == "why"
    assert (tool["role"], tool["tool_call_id"], tool["content"]) == ("tool", "call_2", "ok")

    for query, param in (
        ({"limit": 0}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "resp_1"}, "after"),
    ):
        with pytest.raises(openai.BadRequestError) as bad:
            await chat.list(**query)  # type: ignore[arg-type]
        assert bad.value.body["param"] == param  # type: ignore[index]
