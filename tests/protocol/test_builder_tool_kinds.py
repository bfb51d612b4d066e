"""The builder's custom_tool_call items and namespaced function calls."""

from __future__ import annotations

from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.lifecycle import CALL_EVENTS, ITEM_TRANSITIONS
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Finish, TextDelta, ToolCallDelta
from respgate.protocol.validate import check_events


def run(*signals) -> tuple[list, dict]:
    builder = ResponseBuilder(
        new_response(parse_create_request(b'{"model":"m","input":"x"}'), "resp_1", 1),
        clock=lambda: 2,
    )
    events = builder.open()
    for s in signals:
        events += builder.feed(s)
    return [*events, "[DONE]"], builder.response


def test_custom_tool_call_streams_its_input() -> None:
    events, resp = run(
        TextDelta("ok"),
        ToolCallDelta(0, "call_1", "apply_patch", "*** Begin", kind="custom"),
        ToolCallDelta(0, arguments=" Patch", kind="custom"),
        Finish(),
    )
    assert check_events(events) == []
    types = [e["type"] for e in events if isinstance(e, dict)]
    assert types.count("response.custom_tool_call_input.delta") == 2
    assert "response.function_call_arguments.delta" not in types
    done = next(
        e
        for e in events
        if isinstance(e, dict) and e["type"] == "response.custom_tool_call_input.done"
    )
    assert done["input"] == "*** Begin Patch"
    item = resp["output"][1]
    assert (item["type"], item["call_id"], item["name"], item["input"]) == (
        "custom_tool_call",
        "call_1",
        "apply_patch",
        "*** Begin Patch",
    )
    assert item["id"].startswith("ctc_") and "arguments" not in item


def test_namespace_is_kept_on_the_function_call_and_interleaved_calls_stay_apart() -> None:
    events, resp = run(
        ToolCallDelta(0, "c0", "read_file", '{"p":', namespace="mcp__fs"),
        ToolCallDelta(1, "c1", "apply_patch", "x", kind="custom"),
        ToolCallDelta(0, arguments='"a"}'),
        Finish(),
    )
    assert check_events(events) == []
    assert [
        (i["type"], i.get("namespace"), i.get("arguments", i.get("input"))) for i in resp["output"]
    ] == [
        ("function_call", "mcp__fs", '{"p":"a"}'),
        ("custom_tool_call", None, "x"),
    ]


def test_the_checker_rejects_a_custom_call_closed_without_its_done_event() -> None:
    events, _ = run(ToolCallDelta(0, "c", "t", "x", kind="custom"), Finish())
    broken = [
        e
        for e in events
        if not (isinstance(e, dict) and e["type"] == "response.custom_tool_call_input.done")
    ]
    assert any(v.rule == "lifecycle" for v in check_events(broken))


def test_every_call_type_has_the_same_lifecycle() -> None:
    shapes = {
        t: sorted((s, e.replace(CALL_EVENTS[t][0], "DELTA").replace(CALL_EVENTS[t][1], "DONE"), d)
                  for (k, s, e), d in ITEM_TRANSITIONS.items() if k == t)
        for t in CALL_EVENTS
    }  # fmt: skip
    assert shapes["function_call"] == shapes["custom_tool_call"]
