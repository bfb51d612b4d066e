"""ChatBuilder: signals -> chat.completion.chunk objects; the strict chunk checker; the
fold of a stream. Property tests: any signal sequence gives a stream the checker accepts
and the openai SDK's models parse, and `result()` equals the fold of the chunks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.errors import ApiError
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import (
    Failure,
    Finish,
    ReasoningDelta,
    ReasoningOpaque,
    RefusalDelta,
    Signal,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from respgate.surfaces.chat.builder import ChatBuilder, ChatBuilderError, completion_of
from respgate.surfaces.chat.validate import DONE, RULES, check_chunks, fold_chunks
from tests.protocol.test_builder import ending, signal

# The Responses builder's signals, and custom tool calls (`kind` is read from a call's first
# fragment, so a call of either kind can follow).
custom_call = st.builds(
    ToolCallDelta,
    st.integers(0, 3),
    st.one_of(st.none(), st.sampled_from(["c1", "c2"])),
    st.one_of(st.none(), st.sampled_from(["patch", "sql"])),
    st.text(max_size=5),
    st.just("custom"),
)
chat_signal = st.one_of(signal, custom_call)


def custom_fragments(chunk: dict[str, Any]) -> bool:
    """Whether a chunk streams a custom tool call: OpenAI streams them
    (`{"type": "custom", "custom": {"name", "input"}}`), the published chunk schema and the
    SDK's `ChoiceDeltaToolCall` know only `function` (openai/openai-openapi#576,
    openai/openai-python#2530), so the SDK's strict model cannot validate such a chunk."""
    calls = [c for ch in chunk["choices"] for c in ch["delta"].get("tool_calls") or ()]
    return any("custom" in call for call in calls)


RESPONSE = {"id": "resp_abc", "created_at": 1700000000, "model": "m"}


def run(signals: list[Signal], include_usage: bool = False) -> tuple[ChatBuilder, list[Any]]:
    builder = ChatBuilder(RESPONSE, include_usage=include_usage)
    chunks: list[Any] = builder.open()
    for s in signals:
        chunks += builder.feed(s)
    return builder, chunks


def deltas(chunks: list[Any], field: str) -> list[Any]:
    return [
        c["choices"][0]["delta"][field]
        for c in chunks
        if c.get("choices") and field in c["choices"][0]["delta"]
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(chat_signal, max_size=25), ending, st.booleans())
def test_any_signal_sequence_gives_a_valid_chunk_stream(signals, end, include_usage) -> None:
    builder, chunks = run([*signals, end], include_usage)
    assert check_chunks([*chunks, DONE], include_usage=include_usage) == []
    folded = fold_chunks(chunks)
    if isinstance(end, Failure):
        assert folded == {
            "error": {
                "message": end.message,
                "type": "server_error",
                "param": None,
                "code": end.code,
            }
        }
        with pytest.raises(ApiError) as failed:
            builder.result()
        assert failed.value.code == end.code and failed.value.status >= 500
        return
    result = builder.result()
    if not include_usage:
        result["usage"] = None  # only the usage chunk streams it
    assert folded == result
    # every piece of text that went in comes out, in order, per kind
    sent = "".join(s.text for s in signals if isinstance(s, TextDelta))
    assert (result["choices"][0]["message"]["content"] or "") == sent
    thought = "".join(s.text for s in signals if isinstance(s, ReasoningDelta))
    assert result["choices"][0]["message"].get("reasoning_content", "") == thought
    named = {s.index for s in signals if isinstance(s, ToolCallDelta) and s.name}
    assert len(result["choices"][0]["message"].get("tool_calls", [])) == len(named)


@settings(max_examples=100, deadline=None)
@given(st.lists(chat_signal, max_size=15), ending, st.booleans())
def test_every_chunk_and_the_result_parse_as_the_openai_sdk_models(
    signals, end, include_usage
) -> None:
    builder, chunks = run([*signals, end], include_usage)
    for chunk in chunks:
        if "error" not in chunk and not custom_fragments(chunk):
            ChatCompletionChunk.model_validate(copy.deepcopy(chunk))
    if not isinstance(end, Failure):
        ChatCompletion.model_validate(builder.result())


# A coherent run: non-empty text (with or without logprobs), refusals, reasoning of one
# kind (an upstream sends summaries or raw text), each call whole in two fragments, usage.
coherent = st.one_of(
    st.builds(TextDelta, st.text(min_size=1, max_size=4)),
    st.builds(
        TextDelta,
        st.text(min_size=1, max_size=4),
        st.just(({"token": "t", "logprob": -0.5, "bytes": [116], "top_logprobs": []},)),
    ),
    st.builds(RefusalDelta, st.text(min_size=1, max_size=4)),
    st.builds(ReasoningDelta, st.text(min_size=1, max_size=4)),
    st.builds(
        lambda kind, text: (ToolCallDelta(0, None, "t", "", kind), text),
        st.sampled_from(["function", "custom"]),
        st.text(max_size=5),
    ),
    st.builds(Usage, st.integers(0, 100), st.integers(0, 100)),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(coherent, max_size=12),
    st.sampled_from(["stop", "max_output_tokens"]),
    st.sampled_from(["summary", "raw"]),
)
def test_a_stored_response_gives_back_the_completion_the_client_got(
    steps, reason, thinking
) -> None:
    """`completion_of` the Response the Responses builder kept equals `result()` of the
    chat builder fed the same signals (tool calls compared by id: the Responses builder
    writes a call's item when it ends, the chat stream numbers calls as they are named)."""
    signals: list[Signal] = []
    for i, step in enumerate(steps):
        if isinstance(step, tuple):  # a call, number i: named, then its arguments
            first, rest = step
            signals += [
                ToolCallDelta(i, f"c{i}", f"t{i}", "", first.kind),
                ToolCallDelta(i, arguments=rest, kind=first.kind),
            ]
        elif isinstance(step, ReasoningDelta):
            signals.append(ReasoningDelta(step.text, thinking))
        else:
            signals.append(step)
    req = parse_create_request(b'{"model":"m","input":"hi"}')
    responses = ResponseBuilder(new_response(req, "resp_1", 100), clock=lambda: 200)
    responses.open()
    chat = ChatBuilder(responses.response)
    chat.open()
    for s in [*signals, Finish(reason)]:
        responses.feed(s)
        chat.feed(s)
    stored = completion_of(responses.stored())
    assert stored.pop("metadata") == {}
    got = chat.result()
    for completion in (stored, got):
        message = completion["choices"][0]["message"]
        message["tool_calls"] = sorted(message.get("tool_calls", []), key=lambda c: c["id"])
    assert stored == got


def test_custom_tool_calls_stream_as_openai_streams_them() -> None:
    builder, chunks = run(
        [
            ToolCallDelta(0, "c0", "patch", "*** Begin", "custom"),
            ToolCallDelta(1, "c1", "f", "{}"),
            ToolCallDelta(0, arguments=" Patch", kind="custom"),
            Finish(),
        ]
    )
    calls = [call for fragments in deltas(chunks, "tool_calls") for call in fragments]
    assert calls == [
        {
            "index": 0,
            "id": "c0",
            "type": "custom",
            "custom": {"name": "patch", "input": "*** Begin"},
        },
        {"index": 1, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"index": 0, "custom": {"input": " Patch"}},
    ]
    assert check_chunks([*chunks, DONE]) == []
    result = builder.result()
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    parsed = ChatCompletion.model_validate(result).choices[0].message.tool_calls
    assert parsed is not None and parsed[0].type == "custom"
    assert (parsed[0].custom.name, parsed[0].custom.input) == ("patch", "*** Begin Patch")  # type: ignore[union-attr]
    assert fold_chunks(chunks) == {**result, "usage": None}  # no usage chunk asked for
    broken = copy.deepcopy(chunks)
    broken[3]["choices"][0]["delta"]["tool_calls"][0] = {"index": 0, "function": {"arguments": "x"}}
    assert {v.rule for v in check_chunks([*broken, DONE])} == {"tool_call"}


def test_the_stream_opens_with_the_role_and_tool_calls_carry_names_once() -> None:
    _, chunks = run(
        [
            ToolCallDelta(7, arguments='{"a":'),  # before its name: buffered
            ToolCallDelta(3, "c3", "g", "{"),
            ToolCallDelta(7, "c7", "f", "1}"),
            ToolCallDelta(3, arguments="}"),
            Usage(5, 2),
            Finish(),
        ],
        include_usage=True,
    )
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    calls = [call for fragments in deltas(chunks, "tool_calls") for call in fragments]
    assert calls == [
        {"index": 0, "id": "c3", "type": "function", "function": {"name": "g", "arguments": "{"}},
        {
            "index": 1,
            "id": "c7",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a":1}'},
        },
        {"index": 0, "function": {"arguments": "}"}},
    ]
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 7
    assert all(c["usage"] is None for c in chunks[:-1])


@pytest.mark.parametrize(
    ("reason", "wire"),
    [("stop", "stop"), ("max_output_tokens", "length"), ("content_filter", "content_filter")],
)
def test_finish_reasons(reason, wire) -> None:
    builder, chunks = run([TextDelta("x"), Finish(reason)])
    assert chunks[-1]["choices"][0]["finish_reason"] == wire
    assert builder.result()["choices"][0]["finish_reason"] == wire
    assert "usage" not in chunks[-1]  # not asked


def test_reasoning_refusal_and_logprobs_deltas() -> None:
    lp = {"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}
    builder, chunks = run(
        [
            ReasoningDelta("think", "summary"),
            ReasoningDelta("ing", "raw"),
            ReasoningOpaque("sig"),
            TextDelta("x", (lp,)),
            RefusalDelta("no"),
            Finish(),
        ]
    )
    assert deltas(chunks, "reasoning_content") == ["think", "ing"]
    assert deltas(chunks, "refusal") == ["no"]
    assert chunks[3]["choices"][0]["logprobs"] == {"content": [lp], "refusal": None}
    message = builder.result()["choices"][0]["message"]
    assert message["reasoning_content"] == "thinking"
    assert (message["content"], message["refusal"]) == ("x", "no")


def test_a_failure_is_an_error_frame_and_no_signal_after_the_end() -> None:
    builder, chunks = run([TextDelta("Hel"), Failure("upstream_timeout", "slow")])
    assert chunks[-1] == {
        "error": {
            "message": "slow",
            "type": "server_error",
            "param": None,
            "code": "upstream_timeout",
        }
    }
    with pytest.raises(ApiError) as failed:
        builder.result()
    assert failed.value.status == 504
    with pytest.raises(ChatBuilderError):
        builder.feed(TextDelta("more"))


# ---------------------------------------------------------------- the checker


def good(include_usage: bool = True) -> list[Any]:
    _, chunks = run(
        [TextDelta("hi"), ToolCallDelta(0, "c", "f", "{}"), Usage(1, 1), Finish()], include_usage
    )
    return [*chunks, DONE]


def _choice(stream: list[Any], n: int) -> dict[str, Any]:
    return stream[n]["choices"][0]


BROKEN = {
    "role": lambda s: _choice(s, 0)["delta"].pop("role"),
    "role again": lambda s: _choice(s, 1)["delta"].update(role="assistant"),
    "tool_call": lambda s: _choice(s, 2)["delta"]["tool_calls"][0].update(index=1),
    "tool_call name": lambda s: _choice(s, 2)["delta"]["tool_calls"][0]["function"].pop("name"),
    "finish": lambda s: _choice(s, 1).update(finish_reason="stop"),
    "finish reason": lambda s: _choice(s, 3).update(finish_reason="stop"),
    "usage": lambda s: s.pop(4),
    "usage total": lambda s: s[4]["usage"].update(total_tokens=99),
    "usage null": lambda s: s[1].pop("usage"),
    "chunk": lambda s: s[2].update(id="other"),
    "choices": lambda s: s[1]["choices"].append(copy.deepcopy(s[1]["choices"][0])),
    "done": lambda s: s.pop(),
    "done twice": lambda s: s.append(DONE),
    "terminal": lambda s: s.insert(
        5, {"error": {"message": "m", "type": "t", "param": None, "code": "c"}}
    ),
    "error": lambda s: s.__setitem__(slice(3, None), [{"error": {"message": "m"}}, DONE]),
}


def test_the_checker_accepts_the_builders_stream() -> None:
    assert check_chunks(good(), include_usage=True) == []
    assert check_chunks(good(False)) == []
    assert check_chunks(good(), include_usage=False) != []  # a usage chunk not asked for


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_the_checker_catches_a_broken_stream(breakage: str) -> None:
    stream = good()
    BROKEN[breakage](stream)
    violations = check_chunks(stream, include_usage=True)
    assert violations, f"{breakage} went unnoticed"
    assert {v.rule for v in violations} <= RULES.keys()
