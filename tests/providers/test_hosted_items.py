"""Hosted-tool items, annotations and logprobs from a native Responses upstream.

Each fixture is a stream in OpenAI's wire format (every event validates with the
openai SDK's event union). Replayed over real HTTP by the fake upstream through
`Router.open` and a `ResponseBuilder`, the items come out in order with their
progress events, the upstream's item ids and whole payloads, and every event we
emit passes the strict checker and the SDK's models."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response

from respgate.protocol.lifecycle import HOSTED_EVENTS, HOSTED_ITEM_EVENTS
from tests.support.oracle import assert_valid_stream

from .fake_upstream import FakeUpstream, Reply, fixture
from .support import call_of, drive, request, router_for

HOSTED_FIXTURES = [
    "web_search",
    "file_search",
    "code_interpreter",
    "image_generation",
    "mcp",
    "mcp_approval",
    "mcp_failed",
]


def upstream_events(name: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(line[len(b"data: ") :])
        for line in fixture("responses", name).splitlines()
        if line.startswith(b"data: ")
    ]


def without_ids(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


async def replay(name: str, trickle: bool = False, **body: Any):
    req = request(**body)
    async with FakeUpstream(Reply(fixture("responses", name), trickle=trickle)) as up:
        router = router_for("responses", up.url)
        try:
            return await drive(await router.open("m", call_of(req)), req)
        finally:
            await router.aclose()


@pytest.mark.parametrize("name", HOSTED_FIXTURES)
@pytest.mark.parametrize("trickle", [False, True], ids=["whole", "trickle"])
async def test_hosted_items_pass_through_in_order(name: str, trickle: bool) -> None:
    upstream = upstream_events(name)
    upstream_output = upstream[-1]["response"]["output"]
    out = await replay(name, trickle)
    assert_valid_stream(out.events)  # checker, spec schemas where they apply, SDK models
    output = out.response["output"]
    assert out.response["status"] == "completed"
    assert [i["type"] for i in output] == [i["type"] for i in upstream_output]
    for ours, theirs in zip(output, upstream_output, strict=True):
        if ours["type"] in HOSTED_EVENTS:
            assert ours == theirs  # whole, with the upstream's id (it needs it back)
        else:
            assert without_ids(ours) == without_ids(theirs)  # annotations and all
    # Every progress event, in the upstream's order, each on the right item.
    progress = [(e["type"], e["output_index"]) for e in upstream if e["type"] in HOSTED_ITEM_EVENTS]
    ours_progress = [
        (e["type"], e["output_index"])
        for e in out.events
        if isinstance(e, dict) and e["type"] in HOSTED_ITEM_EVENTS
    ]
    assert ours_progress == progress
    assert progress or name == "mcp_approval"
    # The payloads of progress events are kept (the streamed code/arguments, partial images).
    for field in ("delta", "code", "arguments", "partial_image_b64", "partial_image_index"):
        theirs = [e[field] for e in upstream if e["type"] in HOSTED_ITEM_EVENTS and field in e]
        ours = [
            e[field]
            for e in out.events
            if isinstance(e, dict) and e["type"] in HOSTED_ITEM_EVENTS and field in e
        ]
        assert ours == theirs, field
    Response.model_validate(out.response)


@pytest.mark.parametrize("name", ["web_search", "file_search", "code_interpreter"])
async def test_annotations_are_streamed_and_kept(name: str) -> None:
    upstream = upstream_events(name)
    added = [e for e in upstream if e["type"] == "response.output_text.annotation.added"]
    out = await replay(name)
    ours = [
        e
        for e in out.events
        if isinstance(e, dict) and e["type"] == "response.output_text.annotation.added"
    ]
    assert [e["annotation"] for e in ours] == [e["annotation"] for e in added]
    assert [e["annotation_index"] for e in ours] == list(range(len(added)))
    message = out.message_items[0]
    assert all(e["item_id"] == message["id"] for e in ours)
    assert message["content"][0]["annotations"] == [e["annotation"] for e in added]
    # An annotation comes after the text it annotates, before the part is done.
    types = [e["type"] for e in out.events if isinstance(e, dict)]
    first = types.index("response.output_text.annotation.added")
    assert types.index("response.output_text.delta") < first
    assert first < types.index("response.output_text.done")


async def test_logprobs_pass_through_on_deltas_and_done() -> None:
    upstream = upstream_events("logprobs")
    body = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}
    req = request(**body)
    async with FakeUpstream(Reply(fixture("responses", "logprobs"))) as up:
        router = router_for("responses", up.url)
        try:
            out = await drive(await router.open("m", call_of(req)), req)
        finally:
            await router.aclose()
        sent = up.requests[-1].body
    assert "message.output_text.logprobs" in sent["include"]  # (and the reasoning carrier)
    assert sent["top_logprobs"] == 2
    assert_valid_stream(out.events)

    def by_type(events: list[Any], t: str) -> list[dict[str, Any]]:
        return [e for e in events if isinstance(e, dict) and e["type"] == t]

    theirs = by_type(upstream, "response.output_text.delta")
    ours = by_type(out.events, "response.output_text.delta")
    assert [e["logprobs"] for e in ours] == [e["logprobs"] for e in theirs]
    assert all(e["logprobs"] for e in ours)
    everything = [lp for e in theirs for lp in e["logprobs"]]
    assert by_type(out.events, "response.output_text.done")[0]["logprobs"] == everything
    assert by_type(out.events, "response.content_part.done")[0]["part"]["logprobs"] == everything
    assert out.message_items[0]["content"][0]["logprobs"] == everything
    assert out.text == "Hello world!"
    parsed = Response.model_validate(out.response)
    assert parsed.output[0].content[0].logprobs[1].top_logprobs[1].token == " there"  # type: ignore[union-attr]


async def test_no_logprobs_stay_an_empty_list() -> None:
    out = await replay("text")
    deltas = [e for e in out.events if isinstance(e, dict) and "logprobs" in e]
    assert deltas and all(e["logprobs"] == [] for e in deltas)


async def test_hosted_items_go_back_to_the_upstream_whole() -> None:
    """A later turn's context (`previous_response_id`) sends hosted items back with
    their upstream ids and status; our own items lose their ids."""
    first = await replay("web_search")
    history = [{"type": "message", "role": "user", "content": "When?"}, *first.response["output"]]
    req = request(input="And who?")
    async with FakeUpstream(Reply(fixture("responses", "text"))) as up:
        router = router_for("responses", up.url)
        try:
            await drive(await router.open("m", call_of(req, [*history, *req.items])), req)
        finally:
            await router.aclose()
        sent = up.requests[-1].body["input"]
    assert [i["type"] for i in sent] == ["message", "web_search_call", "message", "message"]
    assert sent[1] == first.response["output"][0]
    assert sent[1]["id"].startswith("ws_") and sent[1]["status"] == "completed"
    assert "id" not in sent[2]
    assert (
        sent[2]["content"][0]["annotations"] == first.message_items[0]["content"][0]["annotations"]
    )


@pytest.mark.parametrize("kind", ["chat_completions", "anthropic"])
async def test_other_dialects_drop_hosted_items_with_a_warning(kind: str) -> None:
    first = await replay("mcp")
    req = request(input="Thanks")
    async with FakeUpstream(Reply(fixture(kind, "text"))) as up:
        router = router_for(kind, up.url)
        try:
            stream = await router.open("m", call_of(req, [*first.response["output"], *req.items]))
            warnings = list(stream.warnings)
            await drive(stream, req)
        finally:
            await router.aclose()
        sent = orjson.dumps(up.requests[-1].body).decode()
    assert "mcpl_" not in sent and "deepwiki" not in sent
    assert "src/openai/_client.py" in sent  # the answer text itself goes back
    assert any("mcp_list_tools" in w for w in warnings)
    assert any("mcp_call" in w for w in warnings)


async def test_chat_completions_logprobs_are_asked_for_and_mapped() -> None:
    from openai.types.chat import ChatCompletionChunk

    chunks = [
        orjson.loads(line[len(b"data: ") :])
        for line in fixture("chat_completions", "logprobs").splitlines()
        if line.startswith(b"data: {")
    ]
    for chunk in chunks:  # the fixture is in OpenAI's Chat Completions wire format
        ChatCompletionChunk.model_validate(chunk)
    body = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}
    for asked in (True, False):
        req = request(**(body if asked else {}))
        async with FakeUpstream(Reply(fixture("chat_completions", "logprobs"))) as up:
            router = router_for("chat_completions", up.url)
            try:
                out = await drive(await router.open("m", call_of(req)), req)
            finally:
                await router.aclose()
            sent = up.requests[-1].body
        assert_valid_stream(out.events)
        assert out.text == "Hello world!"
        if not asked:
            assert "logprobs" not in sent and "top_logprobs" not in sent
            continue
        assert sent["logprobs"] is True and sent["top_logprobs"] == 2
        deltas = [
            e
            for e in out.events
            if isinstance(e, dict) and e["type"] == "response.output_text.delta"
        ]
        upstream = [
            c["choices"][0]["logprobs"]["content"]
            for c in chunks
            if c["choices"] and c["choices"][0]["delta"].get("content")
        ]
        assert [[lp["token"] for lp in e["logprobs"]] for e in deltas] == [
            [lp["token"] for lp in u] for u in upstream
        ]
        world = deltas[1]["logprobs"][0]
        assert world["bytes"] == list(b" world")  # null in the chunk: filled in
        assert [t["token"] for t in world["top_logprobs"]] == [" world", " there"]
        part = out.message_items[0]["content"][0]
        assert [lp["token"] for lp in part["logprobs"]] == ["Hello", " world", "!"]
