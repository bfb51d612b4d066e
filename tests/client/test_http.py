"""The sync and async clients against a real local HTTP server replaying scripted streams."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from respgate.client import (
    AsyncClient,
    Client,
    Event,
    ResponseFailedError,
    ResponsesError,
    Result,
    StatusError,
    StreamError,
    UnknownEvent,
)
from respgate.client import events as ev
from respgate.sse import DONE_FRAME, KEEPALIVE_FRAME, encode_event

from . import streams
from .replay_server import ReplayServer


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    callback_events: list[Event] = field(default_factory=list)
    result: Result | None = None
    error: ResponsesError | None = None


def run_sync(base_url: str, body: dict[str, Any], client_options: dict[str, Any]) -> Outcome:
    out = Outcome()
    with Client(base_url, **client_options) as client:
        try:
            with client.stream(on_event=out.callback_events.append, **body) as stream:
                for event in stream:
                    out.events.append(event)
                out.result = stream.result
        except ResponsesError as exc:
            out.error = exc
    return out


async def run_async(base_url: str, body: dict[str, Any], client_options: dict[str, Any]) -> Outcome:
    out = Outcome()
    async with AsyncClient(base_url, **client_options) as client:
        try:
            async with client.stream(on_event=out.callback_events.append, **body) as stream:
                async for event in stream:
                    out.events.append(event)
                out.result = stream.result
        except ResponsesError as exc:
            out.error = exc
    return out


@pytest.fixture(params=["sync", "async"])
def stream(request: pytest.FixtureRequest, replay: ReplayServer) -> Any:
    def go(model: str, base_url: str | None = None, **client_options: Any) -> Outcome:
        client_options.setdefault("timeout", 10.0)
        body = {"model": model, "input": "hi"}
        if request.param == "sync":
            return run_sync(base_url or replay.base_url, body, client_options)
        return asyncio.run(run_async(base_url or replay.base_url, body, client_options))

    return go


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


# ------------------------------------------------------------------ good streams


@pytest.mark.parametrize("name", ["TEXT", "TOOLS", "REASONING", "REFUSAL"])
def test_stream_yields_typed_events_and_the_result(
    replay: ReplayServer, stream: Any, name: str
) -> None:
    events = streams.build(getattr(streams, name))
    out = stream(replay.events(f"good-{name}", events))
    assert out.error is None
    assert types(out.events) == [e["type"] for e in events]
    assert out.callback_events == out.events
    assert all(not isinstance(e, UnknownEvent) for e in out.events)
    assert out.result is not None
    assert out.result.mismatches == []
    assert out.result.response == orjson.loads(orjson.dumps(events[-1]["response"]))


def test_headers_api_key_and_body_are_sent(replay: ReplayServer, stream: Any) -> None:
    model = replay.events("headers", streams.build(streams.TEXT))
    stream(model, api_key="sk-test", headers={"x-trace": "abc"})
    seen = replay.seen[-1]
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["x-trace"] == "abc"
    assert seen.headers["accept"] == "text/event-stream"
    assert seen.body == {"model": "headers", "input": "hi", "stream": True}


def test_keepalives_crlf_and_one_byte_chunks(replay: ReplayServer, stream: Any) -> None:
    events = streams.build(streams.TEXT)
    body = b"".join(
        [KEEPALIVE_FRAME, *(encode_event(e) + KEEPALIVE_FRAME for e in events), DONE_FRAME]
    )
    body = body.replace(b"\n", b"\r\n")
    out = stream(replay.script("trickle", [body[i : i + 1] for i in range(len(body))]))
    assert types(out.events) == [e["type"] for e in events]
    assert out.result is not None and out.result.output_text == "Hello, world \u2028 \U0001f600"


def test_unknown_event_type_passes_through(replay: ReplayServer, stream: Any) -> None:
    events = streams.build(streams.TEXT)
    extra = {"type": "response.web_search_call.searching", "output_index": 0, "item_id": "ws_1"}
    out = stream(replay.events("unknown", [*events[:2], extra, *events[2:]]))
    assert out.error is None
    assert out.events[2] == UnknownEvent("response.web_search_call.searching", extra)


def test_incomplete_is_reported_on_the_result(replay: ReplayServer, stream: Any) -> None:
    out = stream(replay.events("incomplete", streams.build(streams.INCOMPLETE)))
    assert out.error is None and out.result is not None
    assert out.result.status == "incomplete"
    assert out.result.incomplete_details == {"reason": "max_output_tokens"}
    assert out.events[-1].type == "response.incomplete"


def test_events_arrive_before_the_stream_ends(replay: ReplayServer) -> None:
    """The server holds back the rest until the client has seen the first delta."""
    gate = threading.Event()
    events = streams.build(streams.TEXT)
    first_delta = next(i for i, e in enumerate(events) if e["type"] == "response.output_text.delta")
    model = replay.events("gated", events, gate=gate, gate_at=first_delta + 1)

    def on_event(event: Event) -> None:
        if isinstance(event, ev.OutputTextDelta):
            gate.set()

    with Client(replay.base_url, timeout=5.0) as client:
        result = client.stream(model=model, input="hi", on_event=on_event).final()
    assert gate.is_set()
    assert result.output_text == "Hello, world \u2028 \U0001f600"


def test_reading_stops_at_done_even_if_the_server_keeps_the_body_open(
    replay: ReplayServer, stream: Any
) -> None:
    out = stream(replay.events("hang", streams.build(streams.TEXT), hang=30.0), timeout=3.0)
    assert out.error is None and out.result is not None


# ------------------------------------------------------------------ errors


def test_http_error_body(replay: ReplayServer, stream: Any) -> None:
    body = {
        "error": {
            "message": "bad input",
            "type": "invalid_request_error",
            "param": "input",
            "code": "invalid_value",
        }
    }
    out = stream(
        replay.script("http400", [orjson.dumps(body)], status=400, content_type="application/json")
    )
    assert isinstance(out.error, StatusError)
    assert (
        out.error.status_code,
        out.error.type,
        out.error.code,
        out.error.param,
        out.error.message,
    ) == (
        400,
        "invalid_request_error",
        "invalid_value",
        "input",
        "bad input",
    )
    assert out.error.response is None and out.events == []


def test_http_error_without_json(replay: ReplayServer, stream: Any) -> None:
    out = stream(replay.script("http502", [b"Bad Gateway"], status=502, content_type="text/plain"))
    assert isinstance(out.error, StatusError)
    assert (out.error.status_code, out.error.message, out.error.type) == (502, "Bad Gateway", None)


def test_error_object_with_http_200_and_no_stream(replay: ReplayServer, stream: Any) -> None:
    body = {
        "error": {"message": "quota", "type": "insufficient_quota", "param": None, "code": "quota"}
    }
    out = stream(replay.script("json200", [orjson.dumps(body)], content_type="application/json"))
    assert isinstance(out.error, ResponseFailedError)
    assert (out.error.type, out.error.code, out.error.message) == (
        "insufficient_quota",
        "quota",
        "quota",
    )


def test_non_event_stream_reply(replay: ReplayServer, stream: Any) -> None:
    out = stream(replay.script("html", [b"<html></html>"], content_type="text/html"))
    assert isinstance(out.error, StreamError)
    assert out.error.code == "unexpected_content_type"


def test_in_stream_error_and_response_failed(replay: ReplayServer, stream: Any) -> None:
    events = streams.failed(
        [streams.TextDelta("half an ans")], code="upstream_error", message="boom"
    )
    out = stream(replay.events("failed", events))
    assert types(out.events) == [e["type"] for e in events]  # every event was delivered first
    assert isinstance(out.error, ResponseFailedError)
    assert (out.error.code, out.error.message) == ("upstream_error", "boom")
    assert out.error.response is not None
    assert out.error.response["status"] == "failed"
    assert out.error.response["output"][0]["content"][0]["text"] == "half an ans"


def test_flat_error_event_alone(replay: ReplayServer, stream: Any) -> None:
    events = streams.build(streams.TEXT)[:5]
    error = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "slow down",
        "param": None,
        "sequence_number": 5,
    }
    out = stream(replay.events("flat-error", [*events, error]))
    assert isinstance(out.error, ResponseFailedError)
    assert (out.error.code, out.error.message) == ("rate_limit_exceeded", "slow down")
    assert (
        out.error.response is not None
        and out.error.response["output"][0]["content"][0]["text"] == "Hel"
    )


def test_nested_error_event(replay: ReplayServer, stream: Any) -> None:
    error = {"type": "error", "error": {"type": "server_error", "message": "nested", "code": "x"}}
    out = stream(replay.events("nested-error", [*streams.build(streams.TEXT)[:2], error]))
    assert isinstance(out.error, ResponseFailedError)
    assert (out.error.type, out.error.code, out.error.message) == ("server_error", "x", "nested")


def test_end_without_terminal_event(replay: ReplayServer, stream: Any) -> None:
    events = streams.build(streams.TEXT)[:-1]
    out = stream(replay.events("no-terminal", events, done=False))
    assert isinstance(out.error, StreamError)
    assert out.error.code == "no_terminal_event"
    assert out.error.response is not None
    assert out.error.response["output"][0]["content"][0]["text"] == "Hello, world \u2028 \U0001f600"


def test_truncated_last_event(replay: ReplayServer, stream: Any) -> None:
    events = streams.build(streams.TEXT)
    cut = encode_event(events[-1])[:-1]  # the terminal event without its blank line
    out = stream(replay.script("truncated", [*map(encode_event, events[:-1]), cut]))
    assert isinstance(out.error, StreamError)
    assert out.error.code == "no_terminal_event"
    assert "cut off" in out.error.message


def test_connection_reset_mid_stream(replay: ReplayServer, stream: Any) -> None:
    events = streams.build(streams.TEXT)[:6]
    out = stream(replay.events("reset", events, done=False, reset=True))
    assert isinstance(out.error, StreamError)
    assert out.error.code == "transport_error"
    assert types(out.events) == [e["type"] for e in events]
    assert (
        out.error.response is not None
        and out.error.response["output"][0]["content"][0]["text"] == "Hello, "
    )


def test_read_timeout_on_a_silent_stream(replay: ReplayServer, stream: Any) -> None:
    model = replay.script("silent", [encode_event(streams.build(streams.TEXT)[0])], hang=5.0)
    out = stream(model, timeout=httpx.Timeout(5.0, read=0.3))
    assert isinstance(out.error, StreamError)
    assert out.error.code == "timeout"
    assert types(out.events) == ["response.created"]


def test_connect_error(stream: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = stream("nobody", base_url=f"http://127.0.0.1:{port}/v1")
    assert isinstance(out.error, StreamError)
    assert (out.error.code, out.error.response) == ("transport_error", None)


# ------------------------------------------------------------------ create()


def test_create_returns_the_response(replay: ReplayServer) -> None:
    response = streams.build(streams.TEXT)[-1]["response"]
    model = replay.script("create", [orjson.dumps(response)], content_type="application/json")
    with Client(replay.base_url) as client:
        result = client.create(model=model, input="hi")
    assert result.output_text == "Hello, world \u2028 \U0001f600"
    assert result.rebuilt is None
    assert replay.seen[-1].body["stream"] is False


async def test_async_create_failed_response_raises(replay: ReplayServer) -> None:
    response = streams.failed([])[-1]["response"]
    model = replay.script(
        "create-failed", [orjson.dumps(response)], content_type="application/json"
    )
    async with AsyncClient(replay.base_url) as client:
        with pytest.raises(ResponseFailedError) as info:
            await client.create(model=model, input="hi")
    assert info.value.code == "server_error"
    assert info.value.response is not None and info.value.response["status"] == "failed"
