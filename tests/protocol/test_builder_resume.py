"""`ResponseBuilder.resume`: a builder rebuilt from a logged prefix of its stream ends it
exactly as the live builder would have (crash recovery)."""

from __future__ import annotations

import copy
import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Failure, TextDelta, ToolCallDelta, Usage
from respgate.protocol.validate import check_events
from tests.protocol.test_builder import signal
from tests.support.oracle import assert_valid_stream

FAILURE = Failure("server_error", "The server stopped while generating this response.")


def new_builder(*, queued: bool = False) -> tuple[ResponseBuilder, list[dict]]:
    req = parse_create_request(b'{"model":"m","input":"hi","background":true}')
    counter = itertools.count()
    builder = ResponseBuilder(
        new_response(req, "resp_test", 100),
        clock=lambda: 200,
        mint=lambda kind: f"{kind}_{next(counter)}",
    )
    events = builder.open(queued=queued)
    if queued:
        events += builder.run()
    return builder, events


def logged(events: list[dict]) -> list[dict]:
    """The events as the store gives them back (JSON round trip)."""
    return orjson.loads(orjson.dumps(events))


def resume(events: list[dict]) -> ResponseBuilder:
    stored = copy.deepcopy(events[0]["response"])
    return ResponseBuilder.resume(stored, logged(events), clock=lambda: 300)


@settings(max_examples=300, deadline=None)
@given(st.lists(signal, max_size=20), st.data())
def test_resumed_builder_fails_the_stream_as_the_live_one_would(signals, data) -> None:
    signals = [s for s in signals if not isinstance(s, Usage)]  # usage is not in the events
    live, events = new_builder(queued=data.draw(st.booleans()))
    boundaries = [len(events)]  # where a log may end: after any feed()
    for s in signals:
        events += live.feed(s)
        if live.done:
            break
        boundaries.append(len(events))
    if live.done:
        return  # the upstream already ended it (a protocol error): nothing to recover
    cut = data.draw(st.sampled_from(boundaries))
    # The live builder, failed at the same point:
    expected, prefix = new_builder(queued=events[1]["type"] == "response.queued")
    expected_events = list(prefix)
    replay = iter(signals)
    while len(expected_events) < cut:
        expected_events += expected.feed(next(replay))
    expected_events += expected.feed(FAILURE)

    resumed = resume(events[:cut])
    ending = resumed.feed(FAILURE)
    stream = [*logged(events[:cut]), *ending, "[DONE]"]
    assert check_events(stream) == []
    assert ending == logged(expected_events[cut:])
    assert resumed.response == logged([expected.response])[0]


@settings(max_examples=100, deadline=None)
@given(st.lists(signal, max_size=20), st.data())
def test_resume_from_any_event_prefix_gives_a_valid_stream(signals, data) -> None:
    """Even a log cut between two events of one feed() (not written that way) ends validly."""
    live, events = new_builder()
    for s in signals:
        events += live.feed(s)
        if live.done:
            return
    cut = data.draw(st.integers(2, len(events)))
    resumed = resume(events[:cut])
    stream = [*logged(events[:cut]), *resumed.feed(FAILURE), "[DONE]"]
    assert check_events(stream) == []


def test_partial_text_is_kept_in_the_failed_response() -> None:
    live, events = new_builder()
    for s in [TextDelta("Hel"), TextDelta("lo"), ToolCallDelta(0, "c1", "f", '{"a"')]:
        events += live.feed(s)
    events += live.feed(TextDelta(" again"))  # closes the call, opens a second message
    resumed = resume(events)
    ending = resumed.feed(FAILURE)
    assert [e["type"] for e in ending] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    assert ending[0]["text"] == " again"
    failed = ending[-1]["response"]
    assert [i["type"] for i in failed["output"]] == ["message", "function_call", "message"]
    assert failed["output"][0]["content"][0]["text"] == "Hello"
    assert failed["output"][1]["arguments"] == '{"a"'
    assert failed["output"][2]["status"] == "incomplete"
    assert failed["error"] == {"code": "server_error", "message": FAILURE.message}
    assert_valid_stream([*logged(events), *ending, "[DONE]"])


def test_resume_without_events_continues_from_the_stored_status() -> None:
    live, _ = new_builder()
    ending = ResponseBuilder.resume(live.snapshot(), [], clock=lambda: 300).feed(FAILURE)
    assert [e["type"] for e in ending] == ["error", "response.failed"]
    assert ending[-1]["response"]["output"] == []
