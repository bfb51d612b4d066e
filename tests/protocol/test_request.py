"""Request decoding: everything real clients send is accepted; bad input names its field."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respgate.protocol.errors import ApiError
from respgate.protocol.request import (
    MAX_DEPTH,
    _check_values,
    _fits,
    _Rejected,
    parse_create_request,
    path_param,
    schema_problem,
)


def parse(body: dict):
    return parse_create_request(orjson.dumps(body))


def test_string_input_becomes_a_user_message() -> None:
    assert parse({"model": "m", "input": "hi"}).items == [
        {"type": "message", "role": "user", "content": "hi"}
    ]


def test_agents_sdk_message_without_type() -> None:
    req = parse({"model": "m", "input": [{"role": "user", "content": "hi"}]})
    assert req.items[0]["type"] == "message"


def test_codex_style_request_is_accepted() -> None:
    body = {
        "model": "m",
        "instructions": "be brief",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "rules"}],
            },
            {
                "type": "message",
                "role": "user",
                "id": "msg_client_1",
                "content": [{"type": "input_text", "text": "go"}],
            },
            {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
            {
                "type": "message",
                "role": "assistant",
                "phase": "commentary",
                "content": [{"type": "output_text", "text": "ok"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_text", "text": "done"}],
            },
            {
                "type": "custom_tool_call",
                "call_id": "c2",
                "name": "apply_patch",
                "input": "*** Begin Patch",
            },
            {"type": "custom_tool_call_output", "call_id": "c2", "output": "ok"},
            {"type": "item_reference", "id": "msg_earlier"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,AAAA",
                    },
                ],
            },
        ],
        "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object"}},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
            {"type": "namespace", "name": "mcp", "tools": []},
            {"type": "web_search"},
            {"type": "tool_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k",
        "text": {"verbosity": "low"},
        "client_metadata": {"x": 1},
    }
    req = parse(body)
    assert len(req.items) == 10
    assert req.items[1]["id"] == "msg_client_1"
    assert req.items[6]["type"] == "custom_tool_call"
    assert req.tools[0] == {
        "type": "function",
        "name": "shell",
        "description": None,
        "parameters": {"type": "object"},
        "strict": None,
    }
    assert [t["type"] for t in req.tools] == [
        "function",
        "custom",
        "namespace",
        "web_search",
        "tool_search",
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": 3, "input": "x"}, "model"),
        (
            {
                "model": "m",
                "input": [
                    {"role": "user", "content": "a"},
                    {"type": "message", "role": "user", "content": 3},
                ],
            },
            "input[1].content",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "bogus"}]}]},
            "input[0].content[0].type",
        ),
        ({"model": "m", "input": [{"role": "robot", "content": "a"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": "mystery"}]}, "input[0].type"),
        ({"model": "m", "input": [{"content": "a"}]}, "input[0].type"),
        (
            {"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
        ),
        ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": "10"}, "max_output_tokens"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "nope"}},
            "tool_choice.name",
        ),
        ({"model": "m", "input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"model": "m", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "m", "input": "x", "background": True, "store": False}, "background"),
    ],
)
def test_bad_input_names_the_param(body: dict, param: str) -> None:
    with pytest.raises(ApiError) as info:
        parse(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.body()["error"]["type"] == "invalid_request_error"


def test_invalid_json() -> None:
    with pytest.raises(ApiError) as info:
        parse_create_request(b"{not json")
    assert info.value.status == 400 and info.value.code == "invalid_json"


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "custom"}], "tools[0].name"),
        ([{"type": "namespace", "name": "fs"}], "tools[0].tools"),
        (
            [{"type": "namespace", "name": "fs", "tools": [{"type": "function"}]}],
            "tools[0].tools[0].name",
        ),
    ],
)
def test_named_tools_need_their_fields(tools: list, param: str) -> None:
    with pytest.raises(ApiError) as info:
        parse({"model": "m", "input": "x", "tools": tools})
    assert info.value.param == param


def test_namespace_functions_are_normalised() -> None:
    tool = {
        "type": "namespace",
        "name": "fs",
        "description": "files",
        "tools": [{"type": "function", "name": "read"}],
    }
    (ns,) = parse({"model": "m", "input": "x", "tools": [tool]}).tools
    assert ns["tools"] == [
        {
            "type": "function",
            "name": "read",
            "description": None,
            "parameters": None,
            "strict": None,
        }
    ]


# ---------------------------------------------------------------- the value limits

json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
        st.integers(-(2**63) - 2, -(2**63) + 2), st.integers(2**64 - 3, 2**64 + 1), st.integers(-9, 9),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, derandomize=True, database=None)
@given(json_values, st.integers(0, MAX_DEPTH + 2))
def test_the_fast_and_the_path_finding_walks_agree(value: object, wrap: int) -> None:
    for _ in range(wrap):
        value = [value]
    body = {"model": "m", "input": "x", "tool_choice": {"type": "auto", "x": value}}
    fits = _fits(body, 1)
    try:
        _check_values(body, 1)
        refused = None
    except _Rejected as bad:
        refused = bad.path[::-1]
    assert fits == (refused is None)
    if refused is not None:  # the whole request is refused there too
        with pytest.raises(ApiError) as info:
            parse_create_request(json.dumps(body).encode())  # orjson cannot write it
        assert info.value.param == path_param(refused)


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, None),
        ({"properties": {"a": True, "b": False}, "items": [{}, True], "anyOf": [{}]}, None),
        ({"properties": {"a": 5}}, ["properties", "a"]),
        ({"properties": []}, ["properties"]),
        ({"items": {"items": "x"}}, ["items", "items"]),
        ({"not": [{}]}, ["not"]),
        ({"anyOf": {"a": {}}}, ["anyOf"]),
        ({"oneOf": [{}, {"type": ["string", 1]}]}, ["oneOf", 1, "type"]),
        ({"enum": "a"}, ["enum"]),
        ({"required": True}, ["required"]),
        ({"minimum": "1"}, ["minimum"]),
        ({"maxLength": True}, ["maxLength"]),
        ({"exclusiveMinimum": True, "$defs": {"x": {"minimum": 1.5}}}, None),
        ({"$defs": {"x": {"properties": {"y": None}}}}, ["$defs", "x", "properties", "y"]),
        ({"default": {"properties": 5}, "const": [1], "examples": [{"type": 5}]}, None),
    ],
)
def test_schema_structure(schema: dict, where: list | None) -> None:
    found = schema_problem(schema)
    assert (found and found[0]) == where
