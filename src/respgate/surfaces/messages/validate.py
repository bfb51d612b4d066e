"""The strict checker for a Messages event stream (the tests run it on every stream).

`check_stream(events)` raises `StreamError` at the first event that breaks Anthropic's
order, and returns the message the stream builds (content blocks accumulated, the final
`stop_reason` and usage) or, for a stream that ends with `error`, that error object.
Rules: `message_start` first and once (or `error` alone); `ping` anywhere before the end;
blocks one at a time, indices 0, 1, 2 ... in order; each delta of its block's kind
(`text_delta`/`citations_delta` in `text`, `thinking_delta` then at most one
`signature_delta` in `thinking`, `input_json_delta` in `tool_use` whose text is a JSON
object at the stop, none in `redacted_thinking`); `message_delta` once, with no block
open, a known `stop_reason` and `output_tokens`; `message_stop` right after it and last;
`error` last, with a known error type; exactly one of the two ends the stream.
"""

from __future__ import annotations

from typing import Any

import orjson

BLOCK_DELTAS = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "redacted_thinking": set(),
}
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
ERROR_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
}


class StreamError(AssertionError):
    pass


def _fail(n: int, event: dict[str, Any], problem: str) -> StreamError:
    return StreamError(f"event {n} ({event.get('type')}): {problem}")


class _State:
    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.open: dict[str, Any] | None = None  # the open block
        self.json = ""  # a tool_use block's input so far
        self.signed = False
        self.delta_seen = False
        self.ended = False


def _block_start(s: _State, n: int, ev: dict[str, Any]) -> None:
    assert s.message is not None
    if s.open is not None:
        raise _fail(n, ev, "a block starts while another is open")
    if ev.get("index") != len(s.message["content"]):
        raise _fail(n, ev, f"index {ev.get('index')}, expected {len(s.message['content'])}")
    block = dict(ev.get("content_block") or {})
    if block.get("type") not in BLOCK_DELTAS:
        raise _fail(n, ev, f"unknown block type {block.get('type')!r}")
    if block["type"] == "tool_use" and not (block.get("id") and block.get("name")):
        raise _fail(n, ev, "a tool_use block needs its id and name at the start")
    s.message["content"].append(block)
    s.open, s.json, s.signed = block, "", False


def _block_delta(s: _State, n: int, ev: dict[str, Any]) -> None:
    assert s.message is not None
    block = s.open
    if block is None or ev.get("index") != len(s.message["content"]) - 1:
        raise _fail(n, ev, "a delta for a block that is not open")
    delta = ev.get("delta") or {}
    kind = delta.get("type")
    if kind not in BLOCK_DELTAS[block["type"]]:
        raise _fail(n, ev, f"{kind!r} in a {block['type']} block")
    if s.signed:
        raise _fail(n, ev, "a delta after the thinking block's signature")
    if kind == "text_delta":
        block["text"] += delta["text"]
    elif kind == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
        s.signed = True
    elif kind == "input_json_delta":
        s.json += delta["partial_json"]


def _block_stop(s: _State, n: int, ev: dict[str, Any]) -> None:
    assert s.message is not None
    block = s.open
    if block is None or ev.get("index") != len(s.message["content"]) - 1:
        raise _fail(n, ev, "a stop for a block that is not open")
    if block["type"] == "tool_use":
        try:
            value = orjson.loads(s.json or "{}")
        except orjson.JSONDecodeError as exc:
            raise _fail(n, ev, f"the tool input is not JSON: {s.json!r}") from exc
        if not isinstance(value, dict):
            raise _fail(n, ev, "the tool input is not a JSON object")
        block["input"] = value
    s.open = None


def check_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Check a whole Messages stream; the message it builds (or its error object)."""
    s = _State()
    for n, ev in enumerate(events):
        kind = ev.get("type")
        if s.ended:
            raise _fail(n, ev, "an event after the end of the stream")
        if kind == "error":
            err = ev.get("error") or {}
            if err.get("type") not in ERROR_TYPES or not isinstance(err.get("message"), str):
                raise _fail(n, ev, f"a malformed error {err!r}")
            s.ended = True
            continue
        if s.message is None:
            if kind != "message_start":
                raise _fail(n, ev, "the stream must begin with message_start")
            message = dict(ev["message"])
            if message.get("type") != "message" or message.get("content") != []:
                raise _fail(n, ev, "message_start carries an empty message")
            if not isinstance((message.get("usage") or {}).get("input_tokens"), int):
                raise _fail(n, ev, "message_start carries the input usage")
            s.message = {**message, "content": []}
            continue
        if kind == "message_start":
            raise _fail(n, ev, "a second message_start")
        if kind == "ping":
            continue
        if s.delta_seen and kind != "message_stop":
            raise _fail(n, ev, "only message_stop may follow message_delta")
        if kind == "content_block_start":
            _block_start(s, n, ev)
        elif kind == "content_block_delta":
            _block_delta(s, n, ev)
        elif kind == "content_block_stop":
            _block_stop(s, n, ev)
        elif kind == "message_delta":
            if s.open is not None:
                raise _fail(n, ev, "message_delta while a block is open")
            reason = (ev.get("delta") or {}).get("stop_reason")
            if reason not in STOP_REASONS:
                raise _fail(n, ev, f"unknown stop_reason {reason!r}")
            if not isinstance((ev.get("usage") or {}).get("output_tokens"), int):
                raise _fail(n, ev, "message_delta carries output_tokens")
            sequence = ev["delta"].get("stop_sequence")
            if (reason == "stop_sequence") != isinstance(sequence, str):
                raise _fail(n, ev, "stop_sequence is set exactly when it is the stop_reason")
            usage = {**s.message["usage"], **ev["usage"]}
            s.message.update(stop_reason=reason, stop_sequence=sequence, usage=usage)
            s.delta_seen = True
        elif kind == "message_stop":
            if not s.delta_seen:
                raise _fail(n, ev, "message_stop before message_delta")
            s.ended = True
        else:
            raise _fail(n, ev, "unknown event type")
    if not s.ended:
        raise StreamError("the stream ended without message_stop or error")
    last = events[-1]
    return last if last["type"] == "error" else s.message  # type: ignore[return-value]
