"""Request translation, asserted on the body the fake upstream received, and a
multi-turn tool loop through each provider."""

from __future__ import annotations

from typing import Any

from .fake_upstream import FakeUpstream, Reply, fixture
from .support import call_of, drive, request, router_for

PNG = "data:image/png;base64,iVBORw0KGgo="
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "get_weather", "description": "Weather.", "parameters": {"type": "object"}, "strict": True},
    {"type": "namespace", "name": "mcp__fs", "description": "Files.", "tools": [{"type": "function", "name": "read_file"}]},
    {"type": "custom", "name": "apply_patch", "description": "Edit files.",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
    {"type": "web_search"},
    {"type": "tool_search"},
]  # fmt: skip
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "developer", "content": "Be brief."},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Look:"}, {"type": "input_image", "image_url": PNG}]},
    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking."}], "encrypted_content": "SIG=="},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "On it."}]},
    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
    {"type": "function_call", "call_id": "c2", "name": "read_file", "namespace": "mcp__fs", "arguments": '{"path":"a"}'},
    {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** Begin Patch"},
    {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "file body"}]},
    {"type": "custom_tool_call_output", "call_id": "c3", "output": "done"},
]  # fmt: skip


async def received(
    dialect: str, body: dict[str, Any], reply: str = "text"
) -> tuple[dict[str, Any], list[str], Any]:
    """(upstream request body, warnings, outcome) for one request."""
    req = request(**body)
    async with FakeUpstream(Reply(fixture(dialect, reply))) as up:
        router = router_for(dialect, up.url)
        try:
            stream = await router.open("m", call_of(req))
            warnings = stream.warnings
            out = await drive(stream, req)
        finally:
            await router.aclose()
    return up.requests[0].body, warnings, out


FULL = {
    "instructions": "You are terse.",
    "input": HISTORY,
    "tools": TOOLS,
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "text": {
        "format": {
            "type": "json_schema",
            "name": "out",
            "schema": {"type": "object"},
            "strict": True,
        }
    },
    "reasoning": {"effort": "high"},
    "max_output_tokens": 20000,
    "temperature": 0.5,
    "top_p": 0.9,
}


async def test_chat_completions_request() -> None:
    body, warnings, _ = await received("chat_completions", FULL)
    assert body["model"] == "upstream-m"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": PNG}}]},
        {"role": "assistant", "content": "On it.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "mcp__fs__read_file", "arguments": '{"path":"a"}'}},
            {"id": "c3", "type": "function", "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "file body"},
        {"role": "tool", "tool_call_id": "c3", "content": "done"},
    ]  # fmt: skip
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["get_weather", "mcp__fs__read_file", "apply_patch"]
    assert body["tools"][0]["function"]["strict"] is True
    patch = body["tools"][2]["function"]
    assert patch["parameters"]["required"] == ["input"] and "start: /.+/" in patch["description"]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert body["reasoning_effort"] == "high"
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (20000, 0.5, 0.9)
    assert len(warnings) == 2 and all("dropped" in w for w in warnings)
    assert any("'web_search'" in w for w in warnings) and any(
        "'tool_search'" in w for w in warnings
    )


async def test_chat_completions_allowed_tools_and_forced_custom_choice() -> None:
    allowed = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_weather"}],
    }
    body, _, _ = await received("chat_completions", {"tools": TOOLS, "tool_choice": allowed})
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert body["tool_choice"] == "required"
    body, _, _ = await received(
        "chat_completions",
        {"tools": TOOLS, "tool_choice": {"type": "custom", "name": "apply_patch"}},
    )
    assert body["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}


async def test_anthropic_request() -> None:
    body, warnings, _ = await received("anthropic", FULL)
    assert body["model"] == "upstream-m" and body["stream"] is True
    assert body["system"].startswith(
        "You are terse.\n\nBe brief.\n\nRespond with a single JSON object"
    )
    assert body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Thinking.", "signature": "SIG=="},  # byte-for-byte
            {"type": "text", "text": "On it."},
            {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "c2", "name": "mcp__fs__read_file", "input": {"path": "a"}},
            {"type": "tool_use", "id": "c3", "name": "apply_patch", "input": {"input": "*** Begin Patch"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "file body"}]},
            {"type": "tool_result", "tool_use_id": "c3", "content": "done"},
        ]},
    ]  # fmt: skip
    assert [t["name"] for t in body["tools"]] == [
        "get_weather",
        "mcp__fs__read_file",
        "apply_patch",
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert body["max_tokens"] == 20000
    assert "temperature" not in body and "top_p" not in body  # not allowed with thinking
    assert any("temperature" in w for w in warnings)


async def test_anthropic_redacted_thinking_goes_back_as_it_came() -> None:
    first_body, _, first = await received("anthropic", {"input": "hi"}, "redacted_thinking")
    del first_body
    history = [{"type": "message", "role": "user", "content": "hi"}, *first.response["output"],
               {"type": "message", "role": "user", "content": "again"}]  # fmt: skip
    body, _, _ = await received("anthropic", {"input": history})
    assert body["messages"][1]["content"][0] == {
        "type": "redacted_thinking",
        "data": "EmwKAhgBEgy3va3pzix/LafPsn4a",
    }


async def test_responses_request_passes_through_with_the_whole_context() -> None:
    body, warnings, _ = await received(
        "responses",
        {
            **FULL,
            "store": True,
            "previous_response_id": "resp_old",
            "include": ["reasoning.encrypted_content"],
        },
    )
    assert body["model"] == "upstream-m" and body["stream"] is True and body["store"] is False
    assert "previous_response_id" not in body and "items" not in body and "warnings" not in body
    assert body["instructions"] == "You are terse."
    assert body["input"][0] == {"type": "message", "role": "developer", "content": "Be brief."}
    assert all("id" not in item for item in body["input"])
    # hosted tools pass through to a Responses upstream; function tools as normalised
    assert body["tools"] == request(tools=TOOLS).tools
    assert body["reasoning"]["effort"] == "high" and body["include"] == [
        "reasoning.encrypted_content"
    ]
    assert warnings == []


async def _tool_loop(dialect: str, first: str) -> tuple[dict[str, Any], Any]:
    """Turn 1 ends in a function call; turn 2 sends its output back and gets text."""
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
             {"type": "function", "name": "get_time", "parameters": {"type": "object"}}]  # fmt: skip
    _, _, turn1 = await received(dialect, {"input": "weather?", "tools": tools}, first)
    calls = [i for i in turn1.response["output"] if i["type"] == "function_call"]
    history = [{"type": "message", "role": "user", "content": "weather?"}, *turn1.response["output"],
               *({"type": "function_call_output", "call_id": c["call_id"], "output": "ok"} for c in calls)]  # fmt: skip
    body, _, turn2 = await received(dialect, {"input": history, "tools": tools})
    assert turn2.response["status"] == "completed" and turn2.text == "Hello!"
    return body, calls


async def test_tool_loop_chat_completions() -> None:
    body, calls = await _tool_loop("chat_completions", "parallel_tools")
    assistant, *tool_msgs = body["messages"][1:]
    assert (
        [c["id"] for c in assistant["tool_calls"]]
        == [c["call_id"] for c in calls]
        == ["call_a", "call_b"]
    )
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_a", "call_b"]


async def test_tool_loop_anthropic() -> None:
    body, calls = await _tool_loop("anthropic", "tool_use")
    assistant, results = body["messages"][1:]
    assert [b["type"] for b in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert (
        [b["tool_use_id"] for b in results["content"]]
        == [c["call_id"] for c in calls]
        == ["toolu_1", "toolu_2"]
    )


async def test_tool_loop_responses() -> None:
    body, _calls = await _tool_loop("responses", "reasoning_tools")
    types = [i["type"] for i in body["input"]]
    assert types == [
        "message",
        "reasoning",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert body["input"][1]["encrypted_content"] == "gAAAAB-opaque"
    assert body["input"][3]["namespace"] == "mcp__fs"


UNCALLED = {  # Codex's `goals` context: an output that answers no call, named instead
    "input": [
        {"type": "message", "role": "user", "content": "go"},
        {"type": "function_call_output", "name": "goal_objective", "namespace": "agent",
         "output": "ship it"},
    ]
}  # fmt: skip


async def test_an_output_of_no_call_is_a_user_turn_for_chat_completions() -> None:
    body, _, _ = await received("chat_completions", UNCALLED)
    assert body["messages"] == [
        {"role": "user", "content": "go"},
        {"role": "user", "content": "[agent.goal_objective]\nship it"},
    ]


async def test_an_output_of_no_call_is_user_text_for_anthropic() -> None:
    body, _, _ = await received("anthropic", UNCALLED)
    blocks = [block for m in body["messages"] for block in m["content"]]
    assert {"type": "text", "text": "[agent.goal_objective]\nship it"} in blocks
    assert all(block["type"] != "tool_result" for block in blocks)
    assert body["messages"][-1]["role"] == "user"


async def test_an_output_of_no_call_goes_to_a_responses_upstream_as_it_came() -> None:
    body, _, _ = await received("responses", UNCALLED)
    assert {"type": "function_call_output", "name": "goal_objective", "namespace": "agent",
            "output": "ship it"} in body["input"]  # fmt: skip
