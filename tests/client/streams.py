"""Event streams for client tests: produced by respgate's own `ResponseBuilder`
(so they follow the lifecycle tables), plus a stream shaped like one captured
from OpenAI (annotations, encrypted reasoning) that the builder cannot produce."""

from __future__ import annotations

import itertools
from typing import Any

from respgate.protocol.builder import ResponseBuilder
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

Event = dict[str, Any]


def build(signals: list[Signal], *, request: bytes = b'{"model":"m","input":"hi"}') -> list[Event]:
    """The events the builder emits for `signals` (ids and clock deterministic)."""
    counter = itertools.count()
    response = new_response(parse_create_request(request), "resp_test", 1_700_000_000)
    builder = ResponseBuilder(
        response, clock=lambda: 1_700_000_001, mint=lambda kind: f"{kind}_{next(counter)}"
    )
    events = builder.open()
    for signal in signals:
        events += builder.feed(signal)
    return events


def failed(
    signals: list[Signal], code: str = "server_error", message: str = "upstream went away"
) -> list[Event]:
    """`signals`, then the `error` + `response.failed` ending (open items end incomplete)."""
    return build([*signals, Failure(code, message)])


TEXT = [
    TextDelta("Hel"),
    TextDelta("lo, "),
    TextDelta("world \u2028 \U0001f600"),
    Usage(5, 4),
    Finish(),
]
TOOLS = [
    TextDelta("Checking."),
    ToolCallDelta(0, call_id="call_a", name="get_weather"),
    ToolCallDelta(0, arguments='{"city":'),
    ToolCallDelta(0, arguments='"Paris"}'),
    ToolCallDelta(1, call_id="call_b", name="get_time", arguments=""),
    Usage(10, 7),
    Finish(),
]
CUSTOM_TOOL = [
    ToolCallDelta(
        0, call_id="call_p", name="apply_patch", arguments="*** Begin Patch\n", kind="custom"
    ),
    ToolCallDelta(0, arguments="*** End Patch", kind="custom"),
    ToolCallDelta(1, call_id="call_f", name="read_file", arguments='{"path":"a"}'),
    Finish(),
]
REASONING = [
    ReasoningDelta("Think "),
    ReasoningDelta("hard."),
    ReasoningOpaque("enc=="),
    ReasoningDelta("raw step", kind="raw"),
    TextDelta("42"),
    Usage(3, 9, reasoning_tokens=6),
    Finish(),
]
REFUSAL = [TextDelta("I can't "), RefusalDelta("I won't help with that."), Finish()]
INCOMPLETE = [TextDelta("This answer is cut"), Usage(2, 4), Finish("max_output_tokens")]


def openai_like() -> list[Event]:
    """A stream shaped like OpenAI's: reasoning with encrypted content and a message
    with a url_citation annotation, whose completed snapshot repeats everything."""
    base = {
        "id": "resp_oa",
        "object": "response",
        "created_at": 1,
        "status": "in_progress",
        "model": "gpt-x",
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
    }
    reasoning = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Looked it up."}],
        "encrypted_content": "gAAA",
    }
    annotation = {
        "type": "url_citation",
        "start_index": 0,
        "end_index": 5,
        "url": "https://example.com",
        "title": "Ex",
    }
    text_part = {
        "type": "output_text",
        "text": "Paris is the capital.",
        "annotations": [annotation],
        "logprobs": [],
    }
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [text_part],
    }
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 8},
        "total_tokens": 32,
    }
    events: list[Event] = [
        {"type": "response.created", "response": base},
        {"type": "response.in_progress", "response": base},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": None},
        },
        {
            "type": "response.reasoning_summary_part.added",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "Looked ",
            "obfuscation": "xx",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "it up.",
        },
        {
            "type": "response.reasoning_summary_text.done",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "text": "Looked it up.",
        },
        {
            "type": "response.reasoning_summary_part.done",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": "Looked it up."},
        },
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        },
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": "Paris",
            "logprobs": [],
        },
        {
            "type": "response.output_text.annotation.added",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "annotation_index": 0,
            "annotation": annotation,
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": " is the capital.",
            "logprobs": [],
        },
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "text": "Paris is the capital.",
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "part": text_part,
        },
        {"type": "response.output_item.done", "output_index": 1, "item": message},
        {
            "type": "response.completed",
            "response": {
                **base,
                "status": "completed",
                "output": [reasoning, message],
                "usage": usage,
            },
        },
    ]
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events
