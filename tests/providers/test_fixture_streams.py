"""Every fixture stream, replayed over real HTTP by the fake upstream, through
`Router.open` and a `ResponseBuilder`; the events pass the strict checker and
the final Response is asserted (text, tool calls, usage, status, reasons)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from openai.types.responses import Response

from .fake_upstream import FakeUpstream, Reply, fixture
from .support import call_of, drive, request, router_for

WEATHER = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
           {"type": "function", "name": "get_time", "parameters": {"type": "object"}}]  # fmt: skip


@dataclass
class Expect:
    status: str = "completed"
    text: str = ""
    refusal: str = ""
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    usage: tuple[int, int, int, int] | None = None  # input, output, cached, reasoning
    reason: str | None = None  # incomplete_details.reason
    error: str | None = (
        None  # the `error` event's code (the Response's error.code is from OpenAI's closed set)
    )
    reasoning: list[dict[str, Any]] | None = None  # the reasoning items, ids dropped
    tools: list[dict[str, Any]] = field(default_factory=list)


FC = "function_call"
CASES: dict[tuple[str, str], Expect] = {
    ("chat_completions", "text"): Expect(text="Hello!", usage=(12, 3, 0, 0)),
    ("chat_completions", "text_crlf"): Expect(text="Hello!", usage=(12, 3, 0, 0)),
    ("chat_completions", "reasoning_then_text"): Expect(
        text="42",
        usage=(20, 57, 8, 31),
        reasoning=[
            {
                "type": "reasoning",
                "status": "completed",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Let me think."}],
            }
        ],
    ),
    ("chat_completions", "parallel_tools"): Expect(
        calls=[
            (FC, "call_a", "get_weather", '{"city":"Paris"}'),
            (FC, "call_b", "get_time", '{"tz":"UTC"}'),
        ],
        usage=(30, 20, 0, 0),
    ),
    ("chat_completions", "whole_tools"): Expect(
        text="Checking.",
        calls=[(FC, "call_1", "get_weather", '{"city":"Oslo"}'), (FC, "call_2", "get_time", "{}")],
        usage=(30, 25, 0, 0),
    ),
    ("chat_completions", "length"): Expect(
        "incomplete", "This is cut", usage=(5, 3, 0, 0), reason="max_output_tokens"
    ),
    ("chat_completions", "content_filter"): Expect(
        "incomplete", "Partial", usage=(5, 1, 0, 0), reason="content_filter"
    ),
    ("chat_completions", "refusal"): Expect(refusal="I can't help with that.", usage=(9, 6, 0, 0)),
    ("chat_completions", "inband_error"): Expect("failed", "Some text", error="upstream_error"),
    ("chat_completions", "inband_error_flat"): Expect(
        "failed", "Some text", error="upstream_error"
    ),
    ("chat_completions", "truncated"): Expect("failed", "Half a sen", error="upstream_truncated"),
    ("chat_completions", "usage_missing"): Expect(text="No usage here."),
    ("chat_completions", "malformed"): Expect("failed", "Before ", error="upstream_protocol_error"),
    ("chat_completions", "tools_mapped"): Expect(
        # A custom call is buffered until the turn ends, so it lands after the function call.
        calls=[
            (FC, "call_r", "read_file", '{"path":"a.txt"}'),
            ("custom_tool_call", "call_p", "apply_patch", "*** Begin Patch"),
        ],
        usage=(40, 10, 0, 0),
        tools=[
            {"type": "custom", "name": "apply_patch", "description": "Edit files."},
            {
                "type": "namespace",
                "name": "mcp__fs",
                "description": "Files.",
                "tools": [
                    {"type": "function", "name": "read_file", "parameters": {"type": "object"}}
                ],
            },
        ],
    ),
    ("anthropic", "text"): Expect(text="Hello!", usage=(25, 3, 0, 0)),
    ("anthropic", "thinking_then_text"): Expect(
        text="42",
        usage=(115, 30, 100, 0),
        reasoning=[
            {
                "type": "reasoning",
                "status": "completed",
                "summary": [{"type": "summary_text", "text": "Let me think."}],
                "encrypted_content": "EqQBCkgIARABGAIiQL+sig/==",
            }
        ],
    ),
    ("anthropic", "tool_use"): Expect(
        text="Checking.",
        calls=[
            (FC, "toolu_1", "get_weather", '{"city": "Paris"}'),
            (FC, "toolu_2", "get_time", "{}"),
        ],
        usage=(25, 89, 0, 0),
    ),
    ("anthropic", "max_tokens"): Expect(
        "incomplete", "This is cut", usage=(25, 3, 0, 0), reason="max_output_tokens"
    ),
    ("anthropic", "refusal"): Expect(
        "incomplete", "I can't", usage=(25, 2, 0, 0), reason="content_filter"
    ),
    ("anthropic", "context_window"): Expect(
        "incomplete", "Long", usage=(25, 1, 0, 0), reason="max_output_tokens"
    ),
    ("anthropic", "error"): Expect(
        "failed", "Some text", usage=(25, 1, 0, 0), error="upstream_error"
    ),
    ("anthropic", "truncated"): Expect(
        "failed", "Half a sen", usage=(25, 1, 0, 0), error="upstream_truncated"
    ),
    ("anthropic", "redacted_thinking"): Expect(
        text="Done.",
        usage=(25, 7, 0, 0),
        reasoning=[
            {
                "type": "reasoning",
                "status": "completed",
                "summary": [],
                "encrypted_content": "redacted_thinking:EmwKAhgBEgy3va3pzix/LafPsn4a",
            }
        ],
    ),
    ("responses", "text"): Expect(text="Hello!", usage=(11, 9, 4, 5)),
    ("responses", "reasoning_tools"): Expect(
        calls=[
            (FC, "call_9", "get_weather", '{"city":"Rome"}'),
            (FC, "call_10", "read_file", '{"path":"a"}'),
        ],
        usage=(11, 9, 4, 5),
        reasoning=[
            {
                "type": "reasoning",
                "status": "completed",
                "summary": [{"type": "summary_text", "text": "Need weather."}],
                "encrypted_content": "gAAAAB-opaque",
            }
        ],
    ),
    ("responses", "incomplete"): Expect(
        "incomplete", "This is cut", usage=(11, 9, 4, 5), reason="max_output_tokens"
    ),
    ("responses", "failed"): Expect("failed", "Some text", error="server_error"),
    ("responses", "truncated"): Expect("failed", "Half a sen", error="upstream_truncated"),
}


@pytest.mark.parametrize(("dialect", "name"), list(CASES), ids=[f"{d}/{n}" for d, n in CASES])
@pytest.mark.parametrize("trickle", [False, True], ids=["whole", "trickle"])
async def test_fixture_stream(dialect: str, name: str, trickle: bool) -> None:
    expect = CASES[(dialect, name)]
    req = request(tools=expect.tools or WEATHER)
    async with FakeUpstream(Reply(fixture(dialect, name), trickle=trickle)) as up:
        router = router_for(dialect, up.url)
        try:
            out = await drive(await router.open("m", call_of(req)), req)
        finally:
            await router.aclose()
    resp = out.response
    assert resp["status"] == expect.status
    assert out.text == expect.text
    assert out.refusal == expect.refusal
    assert out.calls == expect.calls
    usage = resp["usage"]
    got = usage and (usage["input_tokens"], usage["output_tokens"],
                     usage["input_tokens_details"]["cached_tokens"], usage["output_tokens_details"]["reasoning_tokens"])  # fmt: skip
    assert got == expect.usage
    assert (resp["incomplete_details"] or {}).get("reason") == expect.reason
    error_events = [e for e in out.events if isinstance(e, dict) and e["type"] == "error"]
    assert [e["code"] for e in error_events] == ([expect.error] if expect.error else [])
    assert (resp["error"] or {}).get("code") == (expect.error and "server_error")
    if expect.reasoning is not None:
        assert [
            {k: v for k, v in i.items() if k != "id"} for i in out.of_type("reasoning")
        ] == expect.reasoning
    if expect.status == "failed":  # never a silent completion: error + response.failed
        assert [e["type"] for e in out.events[-3:-1]] == ["error", "response.failed"]
    # The real SDK's model accepts the final Response and reads the same text.
    assert Response.model_validate(resp).output_text == expect.text
    # Namespaced calls keep their namespace.
    assert all(i.get("namespace") == "mcp__fs" for i in out.of_type(FC) if i["name"] == "read_file")
