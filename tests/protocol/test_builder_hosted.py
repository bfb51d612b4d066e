"""The builder's hosted-tool items and annotations, and the checker's rules for them."""

from __future__ import annotations

import copy

from respgate.protocol.signals import (
    Annotation,
    Failure,
    Finish,
    HostedItem,
    TextDelta,
)
from respgate.protocol.validate import check_events
from tests.protocol.test_builder import HOSTED_SAMPLES, run
from tests.support.oracle import assert_valid_stream

MCP_ADDED, MCP_DONE = HOSTED_SAMPLES["mcp_call"]
WS_ADDED, WS_DONE = HOSTED_SAMPLES["web_search_call"]
ARGS = "response.mcp_call_arguments.delta"


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_a_cut_short_hosted_item_ends_its_stream_then_incomplete() -> None:
    events = run(
        [
            HostedItem(3, MCP_ADDED),
            HostedItem(3, event="response.mcp_call.in_progress", data={}),
            HostedItem(3, event=ARGS, data={"delta": '{"a":'}),
            Failure("upstream_error", "gone"),
        ]
    )
    assert_valid_stream([*copy.deepcopy(events), "[DONE]"])
    assert types(events)[2:] == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    item = events[-1]["response"]["output"][0]
    assert item["arguments"] == '{"a":' and item["id"] == "mcp_1"
    assert "status" not in item  # mcp_call items came without one; none is made up


def test_a_cut_short_image_generation_ends_failed() -> None:
    added, _ = HOSTED_SAMPLES["image_generation_call"]
    events = run([HostedItem(0, added), Finish("max_output_tokens")])
    assert_valid_stream([*copy.deepcopy(events), "[DONE]"])
    assert events[-1]["response"]["output"][0]["status"] == "failed"


def test_out_of_order_progress_is_left_out_and_missing_endings_are_added() -> None:
    events = run(
        [
            HostedItem(0, WS_ADDED),
            HostedItem(0, event="response.web_search_call.searching", data={}),
            HostedItem(0, event="response.web_search_call.in_progress", data={}),  # late
            HostedItem(0, event="response.mcp_call.completed", data={}),  # another type's
            HostedItem(0, WS_DONE, done=True),
            HostedItem(0, event="response.web_search_call.searching", data={}),  # after done
            Finish(),
        ]
    )
    assert_valid_stream([*copy.deepcopy(events), "[DONE]"])
    assert types(events)[2:-1] == [
        "response.output_item.added",
        "response.web_search_call.searching",
        "response.web_search_call.completed",  # the builder's: completed needs its event
        "response.output_item.done",
    ]
    assert events[-1]["response"]["output"] == [WS_DONE]


def test_an_item_that_arrives_whole_is_added_then_done() -> None:
    events = run([TextDelta("Hi"), HostedItem(5, WS_DONE, done=True), Finish()])
    assert_valid_stream([*copy.deepcopy(events), "[DONE]"])
    added = next(
        e
        for e in events
        if e["type"] == "response.output_item.added" and e["item"]["type"] == "web_search_call"
    )
    assert added["item"]["status"] == "in_progress"
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["message", "web_search_call"]


def test_annotations_attach_to_the_open_text_only() -> None:
    cite = {
        "type": "url_citation",
        "url": "https://e",
        "title": "t",
        "start_index": 0,
        "end_index": 2,
    }
    events = run([Annotation(cite), TextDelta("Hi"), Annotation(cite), Annotation(cite), Finish()])
    assert_valid_stream([*copy.deepcopy(events), "[DONE]"])
    added = [e for e in events if e["type"] == "response.output_text.annotation.added"]
    assert [e["annotation_index"] for e in added] == [0, 1]  # the first had no text to annotate
    assert events[-1]["response"]["output"][0]["content"][0]["annotations"] == [cite, cite]


def test_the_checker_flags_a_completed_hosted_item_without_its_event() -> None:
    events = run([HostedItem(0, WS_ADDED), HostedItem(0, WS_DONE, done=True), Finish()])
    bad = [e for e in events if e["type"] != "response.web_search_call.completed"]
    for n, e in enumerate(bad):
        e["sequence_number"] = n
    rules = {v.rule for v in check_events([*bad, "[DONE]"])}
    assert rules == {"lifecycle"}


def test_the_checker_flags_annotation_indices_and_lost_annotations() -> None:
    cite = {
        "type": "url_citation",
        "url": "https://e",
        "title": "t",
        "start_index": 0,
        "end_index": 2,
    }
    events = run([TextDelta("Hi"), Annotation(cite), Finish()])
    skipped = copy.deepcopy(events)
    next(e for e in skipped if e["type"].endswith("annotation.added"))["annotation_index"] = 1
    assert {v.rule for v in check_events([*skipped, "[DONE]"])} == {"content_index"}
    lost = copy.deepcopy(events)
    next(e for e in lost if e["type"] == "response.content_part.done")["part"]["annotations"] = []
    assert "delta_concat" in {v.rule for v in check_events([*lost, "[DONE]"])}


def test_a_streamed_field_gets_its_done_before_the_next_stage() -> None:
    added, _ = HOSTED_SAMPLES["code_interpreter_call"]
    code = "response.code_interpreter_call_code"
    events = run(
        [
            HostedItem(0, added),
            HostedItem(0, event=f"{code}.delta", data={"delta": "1+"}),
            HostedItem(0, event=f"{code}.delta", data={"delta": "1"}),
            HostedItem(0, event="response.code_interpreter_call.interpreting", data={}),
            Finish(),
        ]
    )
    assert_valid_stream([*copy.deepcopy(events), "[DONE]"])
    done = [e for e in events if e["type"] == f"{code}.done"]
    assert [e["code"] for e in done] == ["1+1"]
    assert types(events).index(f"{code}.done") < types(events).index(
        "response.code_interpreter_call.interpreting"
    )
    assert events[-1]["response"]["output"][0]["code"] == "1+1"
