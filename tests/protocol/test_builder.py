"""ResponseBuilder: unit cases and the property that any signal sequence yields a valid stream."""

from __future__ import annotations

import copy
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respgate.protocol.builder import BuilderError, ResponseBuilder
from respgate.protocol.lifecycle import HOSTED_ITEM_EVENTS, HOSTED_STREAMS
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import (
    Annotation,
    Failure,
    Finish,
    HostedItem,
    ReasoningDelta,
    ReasoningOpaque,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from respgate.protocol.validate import check_events
from tests.support.oracle import assert_valid_stream


def make_builder() -> ResponseBuilder:
    req = parse_create_request(b'{"model":"m","input":"hi"}')
    counter = itertools.count()
    return ResponseBuilder(
        new_response(req, "resp_test", 100),
        clock=lambda: 200,
        mint=lambda kind: f"{kind}_{next(counter)}",
    )


def run(signals) -> list[dict]:
    b = make_builder()
    events = b.open()
    for s in signals:
        events += b.feed(s)
        if b.done:
            break
    return events


def test_text_stream_lifecycle() -> None:
    events = run([TextDelta("Hel"), TextDelta("lo"), Usage(5, 2, cached_tokens=1), Finish()])
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 1, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }
    assert final["completed_at"] == 200
    assert events[0]["response"]["output"] == []
    assert_valid_stream([*events, "[DONE]"])


def test_interleaved_tool_calls_are_not_misassigned() -> None:
    events = run(
        [
            ToolCallDelta(0, "call_a", "get_weather", '{"city":'),
            ToolCallDelta(1, "call_b", "get_time", '{"tz":'),
            ToolCallDelta(0, arguments='"Paris"}'),
            ToolCallDelta(1, arguments='"UTC"}'),
            Finish(),
        ]
    )
    assert_valid_stream([*events, "[DONE]"])
    calls = events[-1]["response"]["output"]
    assert [(c["call_id"], c["name"], c["arguments"]) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"UTC"}'),
    ]


def test_tool_call_waits_for_its_name() -> None:
    events = run(
        [ToolCallDelta(0, arguments='{"a":'), ToolCallDelta(0, name="f", arguments="1}"), Finish()]
    )
    assert_valid_stream([*events, "[DONE]"])
    added = next(e for e in events if e["type"] == "response.output_item.added")
    assert added["item"]["name"] == "f" and added["item"]["arguments"] == ""
    assert events[-1]["response"]["output"][0]["arguments"] == '{"a":1}'


def test_nameless_tool_call_fails_the_response() -> None:
    events = run([ToolCallDelta(0, arguments="{}"), Finish()])
    assert events[-1]["type"] == "response.failed"
    assert events[-2]["type"] == "error"
    assert events[-2]["code"] == "upstream_protocol_error"
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_incomplete_marks_the_last_item() -> None:
    events = run([ReasoningDelta("hmm"), TextDelta("partial"), Finish("max_output_tokens")])
    assert_valid_stream([*events, "[DONE]"])
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [i["status"] for i in final["response"]["output"]] == ["completed", "incomplete"]


def test_failure_closes_open_items_then_error_then_failed() -> None:
    events = run([TextDelta("some text"), Failure("upstream_error", "boom")])
    assert_valid_stream([*events, "[DONE]"])
    assert [e["type"] for e in events[-4:]] == [
        "response.content_part.done",
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    error = events[-2]
    assert (
        error["code"] == "upstream_error" and error["message"] == "boom" and error["param"] is None
    )
    assert error["error"] == {
        "type": "server_error",
        "code": "upstream_error",
        "message": "boom",
        "param": None,
    }
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_opaque_reasoning_is_kept_and_ends_the_block() -> None:
    events = run(
        [
            ReasoningDelta("a"),
            ReasoningOpaque("sig-1"),
            ReasoningDelta("b"),
            ReasoningOpaque("sig-2"),
            TextDelta("x"),
            Finish(),
        ]
    )
    assert_valid_stream([*events, "[DONE]"])
    output = events[-1]["response"]["output"]
    assert [(i["type"], i.get("encrypted_content")) for i in output] == [
        ("reasoning", "sig-1"),
        ("reasoning", "sig-2"),
        ("message", None),
    ]


def test_raw_reasoning_uses_openai_event_names() -> None:
    events = run([ReasoningDelta("step", kind="raw"), Finish()])
    assert_valid_stream([*events, "[DONE]"])
    assert "response.reasoning_text.delta" in [e["type"] for e in events]
    assert events[-1]["response"]["output"][0]["content"] == [
        {"type": "reasoning_text", "text": "step"}
    ]


def test_refusal_and_text_are_separate_parts_of_one_message() -> None:
    events = run([TextDelta("a"), RefusalDelta("no"), TextDelta("b"), Finish()])
    assert_valid_stream([*events, "[DONE]"])
    content = events[-1]["response"]["output"][0]["content"]
    assert [p["type"] for p in content] == ["output_text", "refusal", "output_text"]


def test_feeding_after_the_end_is_a_caller_bug() -> None:
    b = make_builder()
    b.open()
    b.feed(Finish())
    with pytest.raises(BuilderError):
        b.feed(TextDelta("late"))


def test_snapshot_includes_the_open_item() -> None:
    b = make_builder()
    b.open()
    b.feed(TextDelta("so far"))
    snap = b.snapshot()
    assert snap["output"][0]["status"] == "in_progress"
    assert snap["output"][0]["content"][0]["text"] == "so far"
    assert b.response["output"] == []


text = st.text(min_size=0, max_size=6)
# Hosted-tool items as an upstream sends them: (added, done) per type.
HOSTED_SAMPLES = {
    "web_search_call": (
        {"id": "ws_1", "type": "web_search_call", "status": "in_progress", "action": {"type": "search"}},
        {"id": "ws_1", "type": "web_search_call", "status": "completed",
         "action": {"type": "search", "query": "q"}},
    ),
    "code_interpreter_call": (
        {"id": "ci_1", "type": "code_interpreter_call", "status": "in_progress", "code": "",
         "container_id": "cntr_1", "outputs": None},
        {"id": "ci_1", "type": "code_interpreter_call", "status": "completed", "code": "1+1",
         "container_id": "cntr_1", "outputs": [{"type": "logs", "logs": "2"}]},
    ),
    "image_generation_call": (
        {"id": "ig_1", "type": "image_generation_call", "status": "in_progress", "result": None},
        {"id": "ig_1", "type": "image_generation_call", "status": "completed", "result": "AAAA"},
    ),
    "mcp_call": (
        {"id": "mcp_1", "type": "mcp_call", "server_label": "s", "name": "n", "arguments": ""},
        {"id": "mcp_1", "type": "mcp_call", "server_label": "s", "name": "n", "arguments": "{}",
         "output": "ok", "error": None},
    ),
    "mcp_approval_request": (
        {"id": "mcpr_1", "type": "mcp_approval_request", "server_label": "s", "name": "n",
         "arguments": "{}"},
    ) * 2,
}  # fmt: skip


def _progress_data(event: str, piece: str) -> dict:
    if event.endswith(".delta"):
        return {"delta": piece}
    if event.endswith("partial_image"):
        return {"partial_image_b64": "AAAA", "partial_image_index": 0}
    fields = {done: field for _, done, field in HOSTED_STREAMS.values()}
    return {fields[event]: piece} if event in fields else {}


hosted = st.builds(
    lambda index, kind, event, piece, how: HostedItem(
        index,
        HOSTED_SAMPLES[kind][how == "done"] if how != "progress" else None,
        event if how == "progress" else None,
        _progress_data(event, piece) if how == "progress" else None,
        how == "done",
    ),
    st.integers(10, 11),
    st.sampled_from(sorted(HOSTED_SAMPLES)),
    st.sampled_from(sorted(HOSTED_ITEM_EVENTS)),
    text,
    st.sampled_from(["open", "progress", "progress", "done"]),
)
logprob = st.builds(
    lambda token, value: {
        "token": token,
        "logprob": value,
        "bytes": list(token.encode()),
        "top_logprobs": [],
    },
    text,
    st.floats(-20, 0),
)
signal = st.one_of(
    st.builds(TextDelta, text),
    st.builds(TextDelta, text, st.lists(logprob, max_size=2).map(tuple)),
    st.builds(
        Annotation,
        st.builds(
            lambda n: {
                "type": "url_citation",
                "url": f"https://e/{n}",
                "title": "t",
                "start_index": 0,
                "end_index": n,
            },
            st.integers(0, 9),
        ),
    ),
    hosted,
    st.builds(RefusalDelta, text),
    st.builds(ReasoningDelta, text, st.sampled_from(["summary", "raw"])),
    st.builds(ReasoningOpaque, st.text(min_size=1, max_size=4)),
    st.builds(
        ToolCallDelta,
        st.integers(0, 3),
        st.one_of(st.none(), st.sampled_from(["c1", "c2"])),
        st.one_of(st.none(), st.sampled_from(["f", "g"])),
        text,
    ),
    st.builds(
        Usage, st.integers(0, 100), st.integers(0, 100), st.integers(0, 5), st.integers(0, 5)
    ),
)
ending = st.one_of(
    st.builds(Finish, st.sampled_from(["stop", "max_output_tokens", "content_filter"])),
    st.builds(Failure, st.sampled_from(["upstream_error", "server_error"]), st.text(max_size=10)),
)


def fold(events: list[dict]) -> dict:
    """Rebuild the final output from the events alone (independently of the builder)."""
    items: dict[int, dict] = {}
    for e in events:
        t = e["type"]
        if t == "response.output_item.done":
            items[e["output_index"]] = e["item"]
    return {"output": [items[i] for i in sorted(items)]}


@settings(max_examples=300, deadline=None)
@given(st.lists(signal, max_size=25), ending)
def test_any_signal_sequence_gives_a_valid_stream(signals, end) -> None:
    events = run([*signals, end])
    assert check_events([*events, "[DONE]"]) == []
    terminal = events[-1]
    assert terminal["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert fold(events)["output"] == terminal["response"]["output"]
    # every piece of text that went in comes out, in order, per kind
    sent = "".join(s.text for s in signals if isinstance(s, TextDelta))
    got = "".join(
        p["text"]
        for i in terminal["response"]["output"]
        if i["type"] == "message"
        for p in i["content"]
        if p["type"] == "output_text"
    )
    if terminal["type"] == "response.failed":
        assert sent.startswith(got)
    else:
        assert got == sent


@settings(max_examples=100, deadline=None)
@given(st.lists(signal, max_size=15), ending)
def test_any_signal_sequence_passes_the_schemas(signals, end) -> None:
    events = run([*signals, end])
    assert_valid_stream(copy.deepcopy([*events, "[DONE]"]))
