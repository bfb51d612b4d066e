"""`MessagesBuilder`: Anthropic's stream from the neutral signals, checked by the strict
Messages checker; unit cases and property tests over any signal sequence."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respgate.protocol.errors import ApiError
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
from respgate.surfaces.messages.builder import MessagesBuilder
from respgate.surfaces.messages.validate import StreamError, check_stream

RESPONSE = {"id": "resp_abc", "model": "m"}


def run(signals: list[Signal], **options: Any) -> tuple[list[dict], MessagesBuilder]:
    builder = MessagesBuilder(RESPONSE, **options)
    events = builder.open()
    for signal in signals:
        events += builder.feed(signal)
    return events, builder


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_text_then_finish_is_anthropics_stream() -> None:
    events, builder = run([Usage(10, 0), TextDelta("Hi "), TextDelta("there"), Usage(10, 2),
                           Finish()])  # fmt: skip
    assert types(events) == [
        "message_start", "ping", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[0]["message"]["usage"]["input_tokens"] == 10  # the usage reported first
    assert events[0]["message"]["id"] == "msg_abc" and events[0]["message"]["content"] == []
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] == 2
    assert check_stream(events) == builder.result()
    assert builder.result()["content"] == [{"type": "text", "text": "Hi there"}]


def test_cached_tokens_are_not_input_tokens() -> None:
    events, builder = run([TextDelta("x"), Usage(100, 5, cached_tokens=60,
                                                 cache_write_tokens=30), Finish()])  # fmt: skip
    assert check_stream(events)["usage"] == builder.result()["usage"] == {
        "input_tokens": 10, "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60, "output_tokens": 5,
    }  # fmt: skip


def test_thinking_gets_its_signature_before_its_stop_then_tools_stop_for_tool_use() -> None:
    events, builder = run([
        ReasoningDelta("hmm"), ReasoningOpaque("sig"),
        ToolCallDelta(0, "call_1", "f", '{"a":'), ToolCallDelta(0, arguments=" 1}"),
        Finish(),
    ])  # fmt: skip
    check_stream(events)
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[:2] == [{"type": "thinking_delta", "thinking": "hmm"},
                          {"type": "signature_delta", "signature": "sig"}]  # fmt: skip
    assert deltas[2:] == [{"type": "input_json_delta", "partial_json": '{"a":'},
                          {"type": "input_json_delta", "partial_json": " 1}"}]  # fmt: skip
    content = builder.result()["content"]
    assert content[1] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}
    assert builder.result()["stop_reason"] == "tool_use"


def test_a_seal_makes_the_signature_the_carrier_of_the_thinking() -> None:
    sealed: list[dict] = []

    def seal(payload: dict) -> str:
        sealed.append(payload)
        return f"sealed{len(sealed)}"

    events, builder = run(
        [ReasoningDelta("raw ", "raw"), ReasoningDelta("think", "raw"), TextDelta("ok"),
         ReasoningOpaque("redacted-data"), Finish()],
        seal=seal,
    )  # fmt: skip
    check_stream(events)
    assert sealed == [{"raw": "raw think"}, {"opaque": "redacted-data"}]
    thinking, text, redacted = builder.result()["content"]
    assert thinking["signature"] == "sealed1" and redacted["data"] == "sealed2"
    assert text == {"type": "text", "text": "ok"}


def test_interleaved_tool_calls_are_written_whole_after_the_live_one() -> None:
    events, builder = run([
        ToolCallDelta(0, "a", "f", '{"x":'), ToolCallDelta(1, "b", "g", '{"y":'),
        ToolCallDelta(0, arguments="1}"), ToolCallDelta(1, arguments="2}"), Finish(),
    ])  # fmt: skip
    check_stream(events)
    assert [(b["id"], b["input"]) for b in builder.result()["content"]] == [
        ("a", {"x": 1}),
        ("b", {"y": 2}),
    ]


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        ([TextDelta("a"), Finish("max_output_tokens")], "max_tokens"),
        ([RefusalDelta("no")], "refusal"),
        ([TextDelta("a"), Finish("content_filter")], "refusal"),
        ([TextDelta("a"), Finish("stop", "END")], "stop_sequence"),
        ([TextDelta("a"), Finish("max_output_tokens", "END")], "max_tokens"),
    ],
)
def test_stop_reasons(signals: list[Signal], reason: str) -> None:
    if not isinstance(signals[-1], Finish):
        signals = [*signals, Finish()]
    events, builder = run(signals)
    assert check_stream(events)["stop_sequence"] == ("END" if reason == "stop_sequence" else None)
    assert builder.result()["stop_reason"] == reason


def test_a_failure_stops_the_open_block_then_sends_the_error_event() -> None:
    events, builder = run([TextDelta("Hel"), Failure("upstream_error", "boom")])
    assert types(events)[-2:] == ["content_block_stop", "error"]
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    assert check_stream(events) == events[-1]
    with pytest.raises(ApiError) as raised:  # without streaming: an HTTP error, never a 200
        builder.result()
    assert (raised.value.status, raised.value.message) == (502, "boom")
    assert builder.feed(TextDelta("late")) == []


def test_a_failure_before_anything_is_the_error_event_alone() -> None:
    events, _ = run([Failure("rate_limit_exceeded", "slow down")])
    assert events == [
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    ]


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "ping"}],  # not message_start first
        [{"type": "message_start", "message": {"type": "message", "content": [],
                                               "usage": {"input_tokens": 0}}}],  # no end
        [{"type": "message_start", "message": {"type": "message", "content": [],
                                               "usage": {"input_tokens": 0}}},
         {"type": "content_block_start", "index": 1, "content_block": {"type": "text",
                                                                        "text": ""}}],
        [{"type": "error", "error": {"type": "teapot", "message": "x"}}],
    ],
)  # fmt: skip
def test_the_checker_refuses_broken_streams(events: list[dict]) -> None:
    with pytest.raises(StreamError):
        check_stream(events)


# ---------------------------------------------------------------- properties

text = st.text(max_size=6)
plain = st.one_of(
    st.builds(TextDelta, text),
    st.builds(RefusalDelta, text),
    st.builds(ReasoningDelta, text, st.sampled_from(["summary", "raw"])),
    st.builds(ReasoningOpaque, st.text(min_size=1, max_size=4)),
    st.builds(Usage, st.integers(0, 100), st.integers(0, 100)),
)
arguments = st.dictionaries(st.sampled_from("abc"), st.integers(0, 9), max_size=3)
ending = st.one_of(
    st.builds(
        Finish,
        st.sampled_from(["stop", "max_output_tokens", "content_filter"]),
        st.sampled_from([None, "END"]),
    ),
    st.builds(Failure, st.sampled_from(["upstream_error", "server_error"]), st.text(max_size=8)),
)


@st.composite
def signal_runs(draw: st.DrawFn) -> tuple[list[Signal], dict[int, dict]]:
    """Plain signals and groups of tool calls whose fragments interleave (each call's own
    fragments in order; some name the call only in their second fragment)."""
    signals: list[Signal] = []
    calls: dict[int, dict] = {}
    for _ in range(draw(st.integers(0, 8))):
        if not draw(st.booleans()):
            signals.append(draw(plain))
            continue
        queues = []
        for _ in range(draw(st.integers(1, 3))):
            index = len(calls)
            calls[index] = draw(arguments)
            raw = orjson.dumps(calls[index]).decode()
            cut = draw(st.integers(0, len(raw)))
            late_name = draw(st.booleans())
            queues.append([
                ToolCallDelta(index, f"c{index}", None if late_name else f"f{index}", raw[:cut]),
                ToolCallDelta(index, name=f"f{index}" if late_name else None, arguments=raw[cut:]),
            ])  # fmt: skip
        while queues:
            queue = queues[draw(st.integers(0, len(queues) - 1))]
            signals.append(queue.pop(0))
            queues = [q for q in queues if q]
    return signals, calls


@settings(max_examples=300, deadline=None)
@given(signal_runs(), ending)
def test_any_signal_sequence_gives_a_valid_messages_stream(run_of, end) -> None:
    signals, calls = run_of
    events, builder = run([*signals, end])
    checked = check_stream(events)
    if isinstance(end, Failure):
        assert checked["type"] == "error"
        with pytest.raises(ApiError):
            builder.result()
        return
    assert checked == builder.result()
    content = checked["content"]
    # Every text in, out in order; every tool call with its whole input, once.
    sent = "".join(s.text for s in signals if isinstance(s, (TextDelta, RefusalDelta)))
    assert "".join(b["text"] for b in content if b["type"] == "text") == sent
    thought = "".join(s.text for s in signals if isinstance(s, ReasoningDelta))
    assert "".join(b["thinking"] for b in content if b["type"] == "thinking") == thought
    tools = {b["id"]: b["input"] for b in content if b["type"] == "tool_use"}
    assert tools == {f"c{i}": args for i, args in calls.items()}
    refused = any(isinstance(s, RefusalDelta) for s in signals)
    expected = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}.get(
        end.reason,
        "stop_sequence" if end.stop_sequence
        else "refusal" if refused
        else "tool_use" if calls
        else "end_turn",
    )  # fmt: skip
    assert checked["stop_reason"] == expected
