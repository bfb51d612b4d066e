"""`conversation` on a create request, the Conversations API bodies, canonical items."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from respgate.protocol.conversations import (
    parse_conversation_create,
    parse_conversation_update,
    parse_items_create,
)
from respgate.protocol.errors import ApiError
from respgate.protocol.items import canonical, parse_include, shown
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response


def body(**fields: Any) -> bytes:
    return orjson.dumps(fields)


@pytest.mark.parametrize("conversation", ["conv_1", {"id": "conv_1"}])
def test_conversation_as_id_or_object(conversation: Any) -> None:
    req = parse_create_request(body(model="m", input="x", conversation=conversation))
    assert req.conversation_id == "conv_1"
    assert new_response(req, "resp_1", 0)["conversation"] == {"id": "conv_1"}


def test_input_may_be_left_out_in_a_conversation_and_no_conversation_no_field() -> None:
    assert parse_create_request(body(model="m", conversation="conv_1")).items == []
    req = parse_create_request(body(model="m", input="x"))
    assert req.conversation_id is None and "conversation" not in new_response(req, "r", 0)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"conversation": 5}, "conversation"),
        ({"conversation": ""}, "conversation"),
        ({"conversation": {}}, "conversation.id"),
        ({"conversation": {"id": ""}}, "conversation.id"),
        ({"conversation": "conv_1", "previous_response_id": "resp_1"}, "conversation"),
    ],
)
def test_bad_conversation_values_name_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_create_request(body(model="m", input="x", **fields))
    assert err.value.status == 400 and err.value.param == param


def test_a_body_sent_by_a_client_cannot_set_derived_fields() -> None:
    req = parse_create_request(
        body(model="m", input="x", conversation_id="conv_sneaky", warnings=["in a header"])
    )
    assert req.conversation_id is None and req.warnings == []


def test_conversation_bodies() -> None:
    assert parse_conversation_create(b"") == ([], {})
    items, metadata = parse_conversation_create(body(items=[{"role": "user", "content": "hi"}],
                                                     metadata={"k": "v"}))  # fmt: skip
    assert items == [{"type": "message", "role": "user", "content": "hi"}] and metadata == {
        "k": "v"
    }
    assert parse_conversation_update(body(metadata=None)) == {}
    assert len(parse_items_create(body(items=[{"role": "user", "content": "a"}] * 20))) == 20


@pytest.mark.parametrize(
    ("parse", "fields", "param"),
    [
        (parse_conversation_create, {"items": [{"role": "user"}]}, "items[0].content"),
        (parse_conversation_create, {"items": "hi"}, "items"),
        (parse_conversation_create, {"metadata": {"k": 1}}, "metadata.k"),
        (parse_conversation_create, {"metadata": {str(i): "" for i in range(17)}}, "metadata"),
        (parse_conversation_update, {}, "metadata"),
        (parse_items_create, {}, "items"),
        (parse_items_create, {"items": []}, "items"),
        (parse_items_create, {"items": [{"role": "user", "content": "a"}] * 21}, "items"),
    ],
)
def test_bad_bodies_name_the_param(parse: Any, fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as err:
        parse(body(**fields))
    assert err.value.status == 400 and err.value.param == param


def test_canonical_items() -> None:
    assert canonical({"type": "message", "role": "user", "content": "hi"}) == {
        "type": "message", "role": "user", "status": "completed",
        "content": [{"type": "input_text", "text": "hi"}],
    }  # fmt: skip
    assistant = canonical({"type": "message", "role": "assistant", "content": "yo"})
    assert assistant["content"] == [{"type": "output_text", "text": "yo", "annotations": []}]
    kept = {"type": "message", "role": "assistant", "status": "incomplete",
            "content": [{"type": "output_text", "text": "a", "annotations": [{"x": 1}]}]}  # fmt: skip
    assert canonical(kept) == kept
    call = canonical({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"})
    assert call["status"] == "completed"
    reasoning = {"type": "reasoning", "summary": []}
    assert canonical(reasoning) == reasoning


def test_include_decides_what_is_shown() -> None:
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": "e"}
    assert "encrypted_content" not in shown(reasoning, frozenset())
    assert shown(reasoning, parse_include(["reasoning.encrypted_content"])) == reasoning
    part = {"type": "output_text", "text": "a", "annotations": [], "logprobs": [{"token": "a"}]}
    message = {"type": "message", "role": "assistant", "content": [part]}
    assert "logprobs" not in shown(message, frozenset())["content"][0]
    assert shown(message, parse_include(["message.output_text.logprobs"])) == message
    with pytest.raises(ApiError) as err:
        parse_include(["file_search_call.results", "nope"])
    assert err.value.param == "include[1]"
