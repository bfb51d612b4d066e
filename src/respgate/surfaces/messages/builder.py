"""`MessagesBuilder`: the neutral signals written as Anthropic Messages stream events.

Sans-IO, one per response. The stream is Anthropic's: `message_start` (the message with
empty content and the usage known so far), `ping`, then one content block at a time
(`content_block_start`, its deltas, `content_block_stop`, indices from 0 in order), then
`message_delta` (`stop_reason`, `stop_sequence`, the final usage) and `message_stop`. A
failure ends the stream with the `error` event instead (after any block is stopped).

Block policy (the Responses builder's item policy, `docs/architecture.md`): at most one
block open; a signal of another kind stops it first. Text and refusal text are `text`
blocks (a refusal ends with `stop_reason: refusal`); reasoning is a `thinking` block whose
`signature_delta` comes just before its stop; opaque reasoning with no thinking open is a
`redacted_thinking` block. Tool calls are keyed by the upstream index: the first call
streams live as a `tool_use` block (`input_json_delta`), fragments of other calls that
arrive meanwhile are buffered and written whole when it stops. Hosted tool items,
annotations and compaction have no Messages form and are left out.

Signatures: with `seal` set (the route sets it: the engine's sealer, the tenant and the
provider that answered), a thinking block's signature and a redacted block's data are the
sealed carrier of what the provider needs to see the reasoning again (`carry.py`), for
every upstream dialect; a client that sends the block back gives it back to that provider.
Without `seal`, the upstream's own opaque state (or an empty signature).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...carry import reasoning_payload
from ...protocol.errors import failure_error
from ...protocol.signals import (
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
from ...providers.anthropic import tool_input
from .errors import failure_object

Event = dict[str, Any]

STOP_REASONS = {"stop": "end_turn", "max_output_tokens": "max_tokens", "content_filter": "refusal"}


@dataclass(slots=True)
class _Call:
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class _Open:
    """The block being streamed."""

    index: int
    kind: str  # text | thinking | tool_use
    key: int | None = None  # the upstream tool call index
    summary: list[str] = field(default_factory=list)  # thinking, as summary or raw text
    raw: list[str] = field(default_factory=list)


def usage_object(usage: Usage | None) -> dict[str, int]:
    """Anthropic's usage: `input_tokens` without the cached and cache-written tokens."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }


class MessagesBuilder:
    """Signals in, Messages events out; `result()` is the `message` object."""

    def __init__(self, response: dict[str, Any], seal: Callable[[dict], str] | None = None):
        rest = response["id"].partition("_")[2]
        self.message: dict[str, Any] = {
            "id": f"msg_{rest or response['id']}",
            "type": "message",
            "role": "assistant",
            "model": response["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_object(None),
        }
        self.seal = seal
        self.started = False
        self.done = False
        self.failure: Failure | None = None
        self._usage: Usage | None = None
        self._open: _Open | None = None
        self._calls: dict[int, _Call] = {}
        self._pending: list[int] = []  # tool call indices buffered while another streams
        self._refused = False
        self._called = False

    # ------------------------------------------------------------ the protocol

    def open(self) -> list[Event]:
        """Nothing yet: `message_start` waits for the first signal, so it carries the
        input usage when the upstream reports it first (Anthropic and Responses do)."""
        return []

    def feed(self, signal: Signal) -> list[Event]:
        if self.done:
            return []
        out = self._start(signal)
        if isinstance(signal, TextDelta):
            out += self._text(signal.text)
        elif isinstance(signal, RefusalDelta):
            self._refused = True
            out += self._text(signal.text)
        elif isinstance(signal, ReasoningDelta):
            out += self._thinking(signal)
        elif isinstance(signal, ReasoningOpaque):
            out += self._opaque(signal.encrypted_content)
        elif isinstance(signal, ToolCallDelta):
            out += self._tool(signal)
        elif isinstance(signal, Usage):
            self._usage = signal
        elif isinstance(signal, Finish):
            out += self._finish(signal)
        elif isinstance(signal, Failure):
            out += self._close()
            self.failure = signal
            self.done = True
            out.append(failure_object(signal.code, signal.message))
        return out

    def result(self) -> dict[str, Any]:
        """The non-streaming `message`; a failed run raises its error as an `ApiError`
        (`protocol.errors.failure_error`: a failure is never a 200)."""
        if self.failure is not None:
            raise failure_error(self.failure.code, self.failure.message)
        return self.message

    # ------------------------------------------------------------ blocks

    def _start(self, signal: Signal) -> list[Event]:
        if self.started or isinstance(signal, Failure):
            return []
        self.started = True
        if isinstance(signal, Usage):
            self._usage = signal
        start = {**self.message, "content": [], "usage": usage_object(self._usage)}
        return [{"type": "message_start", "message": start}, {"type": "ping"}]

    def _begin(self, kind: str, block: dict[str, Any], key: int | None = None) -> list[Event]:
        index = len(self.message["content"])
        self.message["content"].append(block)
        self._open = _Open(index, kind, key)
        empty = {**block, "input": {}} if kind == "tool_use" else dict(block)
        return [{"type": "content_block_start", "index": index, "content_block": empty}]

    def _delta(self, delta: dict[str, Any]) -> Event:
        assert self._open is not None
        return {"type": "content_block_delta", "index": self._open.index, "delta": delta}

    def _text(self, text: str) -> list[Event]:
        out: list[Event] = []
        if self._open is None or self._open.kind != "text":
            out += self._close()
            out += self._begin("text", {"type": "text", "text": ""})
        self.message["content"][-1]["text"] += text
        out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def _thinking(self, signal: ReasoningDelta) -> list[Event]:
        out: list[Event] = []
        if self._open is None or self._open.kind != "thinking":
            out += self._close()
            out += self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        assert self._open is not None
        (self._open.summary if signal.kind == "summary" else self._open.raw).append(signal.text)
        self.message["content"][-1]["thinking"] += signal.text
        out.append(self._delta({"type": "thinking_delta", "thinking": signal.text}))
        return out

    def _carried(self, opaque: str | None, thinking: _Open | None) -> str:
        """What a thinking block's signature (or a redacted block's data) carries."""
        if self.seal is None:
            return opaque or ""
        item: dict[str, Any] = {"encrypted_content": opaque} if opaque else {}
        if thinking is not None:
            item["summary"] = [{"text": "".join(thinking.summary)}]
            item["content"] = [{"text": "".join(thinking.raw)}]
        return self.seal(reasoning_payload(item))

    def _opaque(self, opaque: str) -> list[Event]:
        if self._open is not None and self._open.kind == "thinking":
            return self._close(opaque)
        out = self._close()
        out += self._begin("redacted_thinking", {"type": "redacted_thinking", "data": ""})
        self.message["content"][-1]["data"] = self._carried(opaque, None)
        out[-1]["content_block"]["data"] = self.message["content"][-1]["data"]
        return out + self._stop()

    def _tool(self, signal: ToolCallDelta) -> list[Event]:
        call = self._calls.get(signal.index)
        if call is None:
            call = self._calls[signal.index] = _Call()
            self._pending.append(signal.index)
        elif signal.index not in self._pending and not self._streaming(signal.index):
            return []  # a fragment of a call already written whole: too late, dropped
        call.call_id = call.call_id or signal.call_id
        call.name = call.name or signal.name
        call.arguments += signal.arguments
        if self._streaming(signal.index):
            if not signal.arguments:
                return []
            return [self._delta({"type": "input_json_delta", "partial_json": signal.arguments})]
        if call.name is None or (self._open is not None and self._open.kind == "tool_use"):
            return []  # not named yet, or another call streams: buffered
        return self._close(keep=signal.index) + self._emit_call(signal.index, live=True)

    def _streaming(self, key: int) -> bool:
        return self._open is not None and self._open.kind == "tool_use" and self._open.key == key

    def _emit_call(self, key: int, live: bool) -> list[Event]:
        """Open `tool_use` for call `key` with its arguments so far (stopped at once unless
        `live`)."""
        call = self._calls[key]
        self._pending.remove(key)
        self._called = True
        block = {
            "type": "tool_use",
            "id": call.call_id or f"toolu_{self.message['id'][4:]}_{key}",
            "name": call.name or "",
            "input": {},
        }
        out = self._begin("tool_use", block, key)
        if call.arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments}))
        return out if live else out + self._stop()

    def _stop(self) -> list[Event]:
        """Stop the open block (its final form in `message.content`)."""
        open_ = self._open
        assert open_ is not None
        self._open = None
        block = self.message["content"][open_.index]
        if open_.kind == "tool_use":
            block["input"] = tool_input(self._calls[open_.key or 0].arguments)
        return [{"type": "content_block_stop", "index": open_.index}]

    def _close(self, opaque: str | None = None, keep: int | None = None) -> list[Event]:
        """Stop the open block (a thinking block gets its signature first), then write the
        buffered tool calls whole (all but `keep`, about to stream live)."""
        out: list[Event] = []
        if self._open is not None:
            if self._open.kind == "thinking":
                signature = self._carried(opaque, self._open)
                self.message["content"][-1]["signature"] = signature
                if signature:
                    out.append(self._delta({"type": "signature_delta", "signature": signature}))
            out += self._stop()
        for key in [k for k in self._pending if k != keep and self._calls[k].name is not None]:
            out += self._emit_call(key, live=False)
        return out

    def _finish(self, signal: Finish) -> list[Event]:
        out = self._close()
        reason = STOP_REASONS[signal.reason]
        if reason == "end_turn" and signal.stop_sequence is not None:
            reason = "stop_sequence"
        elif reason == "end_turn" and self._refused:
            reason = "refusal"
        elif reason == "end_turn" and self._called:
            reason = "tool_use"
        usage = usage_object(self._usage)
        sequence = signal.stop_sequence if reason == "stop_sequence" else None
        self.message.update(stop_reason=reason, stop_sequence=sequence, usage=usage)
        self.done = True
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        return [
            *out,
            {"type": "message_delta", "delta": delta, "usage": usage},
            {"type": "message_stop"},
        ]
