"""The Chat Completions request: decoded strictly (400s naming the param) and translated
into the Responses request the engine runs."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from respgate.protocol.request import CreateRequest, parse_create_request
from respgate.surfaces.chat.request import parse_chat_request, to_create_request

USER = {"role": "user", "content": "hi"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def translate(**body: Any) -> CreateRequest:
    body.setdefault("model", "m")
    body.setdefault("messages", [USER])
    return to_create_request(parse_chat_request(orjson.dumps(body)))


def test_every_role_and_part_becomes_a_responses_item() -> None:
    req = translate(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "sys"}]},
            {
                "role": "user",
                "name": "ann",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://e/x.png", "detail": "low"}},
                    {"type": "file", "file": {"file_id": "file_1", "filename": "a.pdf"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "refusal": "no",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"P"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "assistant", "content": [{"type": "text", "text": "It is sunny."}]},
        ]
    )
    assert [(i["type"], i.get("role")) for i in req.items] == [
        ("message", "developer"),
        ("message", "system"),
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    assert req.items[2]["content"] == [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://e/x.png", "detail": "low"},
        {"type": "input_file", "file_id": "file_1", "filename": "a.pdf"},
    ]
    assert req.items[3]["content"] == [{"type": "refusal", "refusal": "no"}]
    assert req.items[4] == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"P"}',
    }
    assert req.items[5] == {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    assert req.items[6]["content"] == [{"type": "output_text", "text": "It is sunny."}]


PATCH = {
    "type": "custom",
    "custom": {
        "name": "apply_patch",
        "description": "edit files",
        "format": {"type": "grammar", "grammar": {"definition": "start: /.+/", "syntax": "lark"}},
    },
}


def test_custom_tools_their_calls_and_results_and_sent_back_reasoning() -> None:
    req = translate(
        tools=[WEATHER, PATCH, {"type": "custom", "custom": {"name": "free"}}],
        tool_choice={
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "auto",
                "tools": [
                    {"type": "custom", "custom": {"name": "apply_patch"}},
                    {"type": "function", "function": {"name": "get_weather"}},
                ],
            },
        },
        messages=[
            {"role": "user", "name": "ann", "content": "fix it"},
            {
                "role": "assistant",
                "reasoning_content": "a patch will do",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "custom",
                        "custom": {"name": "apply_patch", "input": "*** P"},
                    },
                    {"id": "c2", "function": {"name": "get_weather", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
        ],
    )
    assert req.tools[1:] == [
        {
            "type": "custom",
            "name": "apply_patch",
            "description": "edit files",
            "format": {"type": "grammar", "definition": "start: /.+/", "syntax": "lark"},
        },
        {"type": "custom", "name": "free", "description": None, "format": {"type": "text"}},
    ]
    assert req.tool_choice == {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [
            {"type": "custom", "name": "apply_patch"},
            {"type": "function", "name": "get_weather"},
        ],
    }
    assert req.items[1:] == [
        {
            "type": "reasoning",
            "content": [{"type": "reasoning_text", "text": "a patch will do"}],
        },
        {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** P"},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"},
        {"type": "function_call_output", "call_id": "c2", "output": "sunny"},
    ]
    assert any("`name`" in w for w in req.warnings)  # no Responses field carries it
    assert not any("`name`" in w for w in translate().warnings)
    chosen = translate(
        tools=[PATCH], tool_choice={"type": "custom", "custom": {"name": "apply_patch"}}
    )
    assert chosen.tool_choice == {"type": "custom", "name": "apply_patch"}


def test_options_map_to_the_responses_request() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = translate(
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        max_tokens=50,
        max_completion_tokens=40,
        stop="END",
        reasoning_effort="low",
        logprobs=True,
        top_logprobs=2,
        metadata={"k": "v"},
        user="u",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": schema, "strict": True},
        },
        temperature=0.5,
        seed=1,
    )
    assert req.tools == [
        {
            "type": "function",
            "name": "get_weather",
            "description": None,
            "parameters": WEATHER["function"]["parameters"],
            "strict": None,
        }
    ]
    assert req.tool_choice == {"type": "function", "name": "get_weather"}
    assert req.parallel_tool_calls is False
    assert req.max_output_tokens == 40  # max_completion_tokens wins over the deprecated one
    assert req.stop == ["END"]
    assert req.reasoning is not None and req.reasoning.effort == "low"
    assert req.include == ["message.output_text.logprobs"] and req.top_logprobs == 2
    assert req.text is not None and req.text.format.type == "json_schema"
    assert req.text.format.schema == schema and req.text.format.strict is True
    assert (req.metadata, req.user, req.temperature) == ({"k": "v"}, "u", 0.5)
    assert req.store is False  # not stored unless asked
    assert translate(store=True).store is True
    assert any("seed" in w for w in req.warnings)
    assert translate(response_format={"type": "json_object"}).text.format.type == "json_object"
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
    }
    assert translate(tools=[WEATHER], tool_choice=allowed).tool_choice == {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_weather"}],
    }


BAD: list[tuple[dict[str, Any], str | None]] = [
    ({"model": None}, "model"),
    ({"model": ""}, "model"),
    ({"messages": None}, "messages"),
    ({"model": "echo", "messages": []}, "messages"),
    ({"messages": [USER, {"role": "robot", "content": "x"}]}, "messages[1].role"),
    (
        {"messages": [USER, USER, {"role": "user", "content": [{"type": "video"}]}]},
        "messages[2].content[0].type",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                    ],
                }
            ]
        },
        "messages[0].content[0].type",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
        "messages[0].content[0].file",
    ),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    (
        {
            "messages": [
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}
            ]
        },
        "messages[0].tool_calls[0].function.arguments",
    ),
    ({"n": 2}, "n"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": "many"}, "max_completion_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"reasoning_effort": "max"}, "reasoning_effort"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "custom"}]}, "tools[0].custom"),
    ({"tools": [{"type": "custom", "custom": {"name": ""}}]}, "tools[0].custom.name"),
    (
        {
            "tools": [
                {
                    "type": "custom",
                    "custom": {
                        "name": "x",
                        "format": {
                            "type": "grammar",
                            "grammar": {"definition": "a", "syntax": "peg"},
                        },
                    },
                }
            ]
        },
        "tools[0].custom.format.grammar.syntax",
    ),
    (
        {"tools": [WEATHER], "tool_choice": {"type": "custom", "custom": {"name": "get_weather"}}},
        "tool_choice.custom.name",
    ),
    (
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom"}]}]},
        "messages[0].tool_calls[0].custom",
    ),
    (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}]},
        "tools[0].function.parameters.type",
    ),
    (
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice.function.name",
    ),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
    ),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"metadata": {"k": 1}}, "metadata.k"),
]


@pytest.mark.parametrize(("body", "param"), BAD, ids=[p or "body" for _, p in BAD])
async def test_bad_input_is_a_400_naming_the_param(
    client: httpx.AsyncClient, body: dict[str, Any], param: str | None
) -> None:
    body = {"model": "echo", "messages": [USER], **body}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error


async def test_a_body_that_is_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("missing", ["model", "messages"])
async def test_a_missing_required_field_is_named(client: httpx.AsyncClient, missing: str) -> None:
    body = {"model": "echo", "messages": [USER]}
    del body[missing]
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == missing


def test_stop_is_never_read_from_a_responses_body() -> None:
    req = parse_create_request(b'{"model": "m", "input": "x", "stop": ["a"]}')
    assert req.stop is None


def test_only_the_chat_surface_marks_a_request_as_a_chat_call() -> None:
    assert translate().surface == "chat.completions"  # listed as a chat completion when stored
    spoofed = b'{"model":"m","input":"hi","surface":"chat.completions"}'
    assert parse_create_request(spoofed).surface is None  # never read from a Responses body
