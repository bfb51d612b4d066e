"""The accumulator rebuilds the terminal snapshot from events alone, and says where
a stream disagrees with itself."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from respgate.client import Accumulator, Result, decode_event
from respgate.sse import encode_json

from . import streams


def accumulate(events: list[dict[str, Any]]) -> Accumulator:
    acc = Accumulator()
    for event in events:
        acc.add(decode_event(encode_json(event)))
    return acc


def wire(obj: Any) -> Any:
    """The JSON the client sees for `obj` (the builder shares dicts between events)."""
    return orjson.loads(encode_json(obj))


@pytest.mark.parametrize(
    "events",
    [
        streams.build(streams.TEXT),
        streams.build(streams.TOOLS),
        streams.build(streams.CUSTOM_TOOL),
        streams.build(streams.REASONING),
        streams.build(streams.REFUSAL),
        streams.build(streams.INCOMPLETE),
        streams.failed([streams.TextDelta("half an ans")]),
        streams.openai_like(),
    ],
    ids=[
        "text",
        "tools",
        "custom_tool",
        "reasoning",
        "refusal",
        "incomplete",
        "failed",
        "openai_like",
    ],
)
def test_rebuilds_the_terminal_snapshot_exactly(events: list[dict[str, Any]]) -> None:
    acc = accumulate(events)
    snapshot = wire(events[-1]["response"])
    assert acc.rebuilt() == snapshot
    result = acc.result()
    assert result.mismatches == []
    assert result.rebuilt == result.response == snapshot


def test_rebuild_does_not_copy_the_output_from_the_snapshot() -> None:
    events = streams.build(streams.TEXT)
    events[-1] = {**events[-1], "response": {**events[-1]["response"], "output": []}}
    result = accumulate(events).result()
    assert result.rebuilt is not None
    assert result.rebuilt["output"][0]["content"][0]["text"] == "Hello, world \u2028 \U0001f600"
    assert result.mismatches == ["response.output: 1 entries in the stream, 0 in the snapshot"]


def test_snapshot_without_output_is_replaced_by_the_rebuilt_one() -> None:
    events = streams.build(streams.TEXT)
    response = dict(events[-1]["response"])
    del response["output"]
    events[-1] = {**events[-1], "response": response}
    result = accumulate(events).result()
    assert result.output_text == "Hello, world \u2028 \U0001f600"
    assert result.mismatches == []


def test_tool_call_with_arguments_in_its_first_fragment() -> None:
    """The builder once added such a call with its arguments and then sent them again."""
    events = streams.build(
        [streams.ToolCallDelta(0, call_id="c", name="f", arguments="{}"), streams.Finish()]
    )
    assert accumulate(events).result().mismatches == []


def test_result_views() -> None:
    tools = accumulate(streams.build(streams.TOOLS)).result()
    assert tools.output_text == "Checking."
    assert [(c.call_id, c.name, c.arguments, c.parsed_arguments) for c in tools.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}', {"city": "Paris"}),
        ("call_b", "get_time", "", {}),
    ]
    assert tools.usage is not None
    assert (
        tools.usage["input_tokens"],
        tools.usage["output_tokens"],
        tools.usage["total_tokens"],
    ) == (10, 7, 17)
    reasoning = accumulate(streams.build(streams.REASONING)).result()
    assert (reasoning.reasoning_summary, reasoning.reasoning_text, reasoning.output_text) == (
        "Think hard.",
        "raw step",
        "42",
    )
    refusal = accumulate(streams.build(streams.REFUSAL)).result()
    assert (refusal.output_text, refusal.refusal) == ("I can't ", "I won't help with that.")
    incomplete = accumulate(streams.build(streams.INCOMPLETE)).result()
    assert incomplete.status == "incomplete"
    assert incomplete.incomplete_details == {"reason": "max_output_tokens"}
    oa = accumulate(streams.openai_like()).result()
    assert oa.output[1]["content"][0]["annotations"][0]["url"] == "https://example.com"


def test_invalid_arguments_parse_to_none() -> None:
    item = {"type": "function_call", "id": "fc", "call_id": "c", "name": "f", "arguments": '{"a":'}
    assert Result({"output": [item]}).tool_calls[0].parsed_arguments is None


def tamper(events: list[dict[str, Any]], event_type: str, **changes: Any) -> list[dict[str, Any]]:
    events = copy.deepcopy(events)
    for event in events:
        if event["type"] == event_type:
            event.update(changes)
            return events
    raise AssertionError(event_type)


def test_delta_that_disagrees_with_done_text_is_reported() -> None:
    events = tamper(streams.build(streams.TEXT), "response.output_text.delta", delta="Jel")
    mismatches = accumulate(events).result().mismatches
    assert mismatches[0].startswith("output[0].content[0].text: deltas give 'Jello, world")
    assert "response.output_text.done says 'Hello, world" in mismatches[0]
    assert "response.output[0].content[0].text: stream 'Jello" in mismatches[-1]


def test_arguments_that_disagree_are_reported() -> None:
    events = tamper(
        streams.build(streams.TOOLS), "response.function_call_arguments.delta", delta='{"town":'
    )
    assert any(
        m.startswith("output[1].arguments: deltas give")
        for m in accumulate(events).result().mismatches
    )


def test_item_id_changed_between_added_and_done_is_reported() -> None:
    events = copy.deepcopy(streams.build(streams.TEXT))
    done = next(e for e in events if e["type"] == "response.output_item.done")
    done["item"]["id"] = "msg_other"
    assert (
        "output[0].id: added 'message_0', done 'msg_other'"
        in accumulate(events).result().mismatches
    )


def test_events_for_parts_never_added_are_reported_not_raised() -> None:
    events = [e for e in streams.build(streams.TEXT) if e["type"] != "response.content_part.added"]
    mismatches = accumulate(events).result().mismatches
    assert (
        "output[0].content[0]: response.output_text.delta before its part was added" in mismatches
    )


def test_live_item_view_while_streaming() -> None:
    acc = Accumulator()
    for event in streams.build(streams.TOOLS)[:11]:
        acc.add(decode_event(encode_json(event)))
    assert acc.item(1) == {
        "id": "function_call_1",
        "type": "function_call",
        "status": "in_progress",
        "call_id": "call_a",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }


def test_custom_tool_input_that_disagrees_is_reported() -> None:
    events = tamper(
        streams.build(streams.CUSTOM_TOOL),
        "response.custom_tool_call_input.delta",
        delta="*** Oops\n",
    )
    assert any(
        m.startswith("output[0].input: deltas give") for m in accumulate(events).result().mismatches
    )


def test_open_responses_reasoning_names_are_understood() -> None:
    events = [
        {**e, "type": e["type"].replace("response.reasoning_text.", "response.reasoning.")}
        for e in wire(
            streams.build([streams.ReasoningDelta("thinking", kind="raw"), streams.Finish()])
        )
    ]
    result = accumulate(events).result()
    assert result.mismatches == []
    assert result.reasoning_text == "thinking"
