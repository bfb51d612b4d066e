"""The strict checker accepts what the builder emits and names the rule each breakage violates."""

from __future__ import annotations

import copy
from collections.abc import Callable

import orjson
import pytest

from respgate.protocol.signals import (
    Failure,
    Finish,
    HostedItem,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from respgate.protocol.validate import check_events
from tests.protocol.test_builder import run


def good() -> list:
    """A correct stream as a client sees it (a JSON round trip: no shared objects)."""
    events = run(
        [TextDelta("a"), TextDelta("b"), ToolCallDelta(0, "c", "f", "{}"), Usage(1, 2), Finish()]
    )
    return [*orjson.loads(orjson.dumps(events)), "[DONE]"]


def index_of(events: list, event_type: str) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, dict) and e["type"] == event_type)


def drop(event_type: str) -> Callable[[list], None]:
    return lambda ev: ev.pop(index_of(ev, event_type))


def swap_sequence(ev: list) -> None:
    ev[3]["sequence_number"], ev[4]["sequence_number"] = (
        ev[4]["sequence_number"],
        ev[3]["sequence_number"],
    )


def change_item_id(ev: list) -> None:
    ev[index_of(ev, "response.output_text.delta")]["item_id"] = "msg_other"


def wrong_done_text(ev: list) -> None:
    ev[index_of(ev, "response.output_text.done")]["text"] = "ab!"


def two_terminals(ev: list) -> None:
    ev.insert(len(ev) - 1, copy.deepcopy(ev[-2]))


def wrong_output_index(ev: list) -> None:
    ev[index_of(ev, "response.function_call_arguments.delta")]["output_index"] = 0


def missing_field(ev: list) -> None:
    del ev[-2]["response"]["tools"]


def snapshot_differs(ev: list) -> None:
    ev[-2]["response"]["output"][0]["content"][0]["text"] = "changed"


def nonempty_added(ev: list) -> None:
    ev[index_of(ev, "response.output_item.added")]["item"]["content"] = [
        {"type": "output_text", "text": "x"}
    ]


def float_created_at(ev: list) -> None:
    ev[0]["response"]["created_at"] = 1.5


def changed_response_id(ev: list) -> None:
    ev[1]["response"]["id"] = "resp_other"


def event_after_done(ev: list) -> None:
    ev.append({"type": "response.in_progress", "sequence_number": 99})


CASES = [
    ("missing output_item.added", drop("response.output_item.added"), "lifecycle"),
    ("missing content_part.added", drop("response.content_part.added"), "lifecycle"),
    ("missing arguments.done", drop("response.function_call_arguments.done"), "lifecycle"),
    ("missing [DONE]", lambda ev: ev.pop(), "done"),
    ("no terminal event", lambda ev: ev.pop(-2), "terminal"),
    ("sequence reordered", swap_sequence, "sequence_number"),
    ("item id changed", change_item_id, "item_id"),
    ("done text differs", wrong_done_text, "delta_concat"),
    ("two terminal events", two_terminals, "terminal"),
    ("wrong output_index", wrong_output_index, "output_index"),
    ("response field missing", missing_field, "response_object"),
    ("snapshot differs", snapshot_differs, "snapshot"),
    ("added item not empty", nonempty_added, "added_item"),
    ("float created_at", float_created_at, "response_object"),
    ("response id changed", changed_response_id, "response_id"),
    ("event after [DONE]", event_after_done, "done"),
    ("first event not created", lambda ev: ev.pop(0), "first_event"),
]


def test_builder_output_is_clean() -> None:
    assert check_events(good()) == []


@pytest.mark.parametrize(("name", "mutate", "rule"), CASES, ids=[c[0] for c in CASES])
def test_each_breakage_names_its_rule(name: str, mutate: Callable[[list], None], rule: str) -> None:
    events = copy.deepcopy(good())
    mutate(events)
    rules = {v.rule for v in check_events(events)}
    assert rule in rules, f"{name}: got {rules}"


def test_error_event_needs_both_shapes() -> None:
    events = [
        *run([TextDelta("a")]),
        {"type": "error", "sequence_number": 5, "code": "x", "message": "m"},
    ]
    rules = {v.rule for v in check_events(events)}
    assert "error_event" in rules


def test_open_responses_names_for_raw_reasoning_are_accepted() -> None:
    """A server that uses the spec's `response.reasoning.*` names streams correctly too."""
    events = orjson.loads(
        orjson.dumps(run([ReasoningDelta("step", kind="raw"), TextDelta("x"), Finish()]))
    )
    renamed = [
        {**e, "type": e["type"].replace("response.reasoning_text.", "response.reasoning.")}
        for e in events
    ]
    assert any(e["type"] == "response.reasoning.delta" for e in renamed)
    assert check_events([*renamed, "[DONE]"]) == []


def test_websocket_turn_may_end_failed_without_the_error_event() -> None:
    events = run([TextDelta("a"), Failure("server_error", "boom")])
    events = orjson.loads(orjson.dumps(events))
    failed = events.pop()
    error = events.pop()
    assert error["type"] == "error"
    failed["sequence_number"] -= 1
    turn = [*events, failed]
    assert check_events(turn, require_done=False, websocket=True) == []
    # Over SSE the error event is required; over WebSocket an open item is still an error.
    assert {v.rule for v in check_events(turn, require_done=False)} == {"lifecycle"}
    assert check_events([*events[:-3], failed], require_done=False, websocket=True)


# Every event that repeats streamed text whole, and where it carries that text.
def _set_text(event: dict, value: str) -> None:
    for holder in (event, event.get("part") or {}, event.get("item") or {}):
        for key in ("text", "refusal", "arguments", "input"):
            if isinstance(holder.get(key), str):
                holder[key] = value
                return
        for part in holder.get("content") or holder.get("summary") or []:
            key = "refusal" if part.get("type") == "refusal" else "text"
            part[key] = value
            return
    raise AssertionError(f"no text in {event['type']}")


REPEATS_DELTAS = (
    "response.output_text.done",
    "response.refusal.done",
    "response.reasoning_text.done",
    "response.reasoning_summary_text.done",
    "response.function_call_arguments.done",
    "response.custom_tool_call_input.done",
    "response.content_part.done",
    "response.reasoning_summary_part.done",
    "response.output_item.done",
)
STREAMS = {
    "output_text": [TextDelta("a"), TextDelta("b")],
    "refusal": [RefusalDelta("a"), RefusalDelta("b")],
    "reasoning summary": [ReasoningDelta("a"), ReasoningDelta("b")],
    "reasoning text": [ReasoningDelta("a", kind="raw"), ReasoningDelta("b", kind="raw")],
    "function call": [ToolCallDelta(0, "c", "f", '{"a"'), ToolCallDelta(0, arguments=":1}")],
    "custom tool call": [
        ToolCallDelta(0, "c", "p", "*** ", kind="custom"),
        ToolCallDelta(0, arguments="Patch", kind="custom"),
    ],
}
DONE_CASES = [
    (stream, i, event["type"])
    for stream, signals in STREAMS.items()
    for i, event in enumerate(run([*signals, Finish()]))
    if event["type"] in REPEATS_DELTAS
]


@pytest.mark.parametrize(
    ("stream", "index", "event_type"), DONE_CASES, ids=[f"{s}-{t}" for s, _, t in DONE_CASES]
)
def test_a_done_event_that_differs_from_its_deltas_is_flagged_there(
    stream: str, index: int, event_type: str
) -> None:
    """Each `.done` (and part/item done) that repeats the deltas is checked on its own: change
    only that event and the checker names `delta_concat` at that very event."""
    events = [*orjson.loads(orjson.dumps(run([*STREAMS[stream], Finish()]))), "[DONE]"]
    assert check_events(events) == []
    _set_text(events[index], "changed")
    flagged = [(v.rule, v.index) for v in check_events(events)]
    assert ("delta_concat", index) in flagged, flagged


def test_every_delta_kind_is_covered() -> None:
    covered = {t for _, _, t in DONE_CASES}
    assert covered == set(REPEATS_DELTAS)


def mcp_stream() -> list:
    """A listing and a call as the gateway's tool loop emits them."""
    listing = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "s", "tools": [],
               "error": None}  # fmt: skip
    call = {"id": "mcp_1", "type": "mcp_call", "server_label": "s", "name": "n",
            "arguments": "", "output": None, "error": None, "status": "in_progress"}  # fmt: skip
    events = run(
        [
            HostedItem(0, listing),
            HostedItem(0, event="response.mcp_list_tools.in_progress"),
            HostedItem(0, {**listing, "tools": [{"name": "n", "input_schema": {}}]}, done=True),
            HostedItem(1, call),
            HostedItem(1, event="response.mcp_call_arguments.delta", data={"delta": "{}"}),
            HostedItem(
                1, {**call, "arguments": "{}", "output": "ok", "status": "completed"}, done=True
            ),
            Finish(),
        ]
    )
    return [*orjson.loads(orjson.dumps(events)), "[DONE]"]


def done_item(events: list, item_type: str) -> dict:
    return next(
        e["item"]
        for e in events
        if isinstance(e, dict)
        and e["type"] == "response.output_item.done"
        and e["item"]["type"] == item_type
    )


def test_mcp_items_are_checked() -> None:
    assert check_events(mcp_stream()) == []
    completed_with_error = mcp_stream()
    done_item(completed_with_error, "mcp_list_tools")["error"] = "down"
    nameless = mcp_stream()
    del done_item(nameless, "mcp_call")["name"]
    for events, message in ((completed_with_error, "completed with an error"),
                            (nameless, "mcp_call without name")):  # fmt: skip
        found = [(v.rule, v.message) for v in check_events(events)]
        assert any(rule == "done_item" and message in text for rule, text in found), found
