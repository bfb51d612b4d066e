"""`ChatBuilder`: neutral signals in, `chat.completion.chunk` objects out (sans-IO), as
OpenAI streams them; `result()` is the `chat.completion` object.

Its rules (the checker in `validate.py` holds a stream to the same ones):
- `open()` is the first chunk: `delta` `{"role": "assistant", "content": ""}`; no later
  delta carries `role`.
- Text, refusal and reasoning stream as `content`, `refusal` and `reasoning_content` deltas
  (reasoning as vLLM and DeepSeek write it; both summary and raw reasoning go there);
  `logprobs` ride on the content chunk they belong to. URL citations are `annotations`
  deltas in Chat Completions' shape; other annotations, opaque reasoning, compaction and
  hosted-tool items have no Chat Completions form and are left out.
- Tool calls are numbered 0, 1, 2 ... in the order they get their name (the upstream's own
  numbers are mapped); the first fragment carries `id`, `type` and `function.name` (and the
  arguments buffered while the name was unknown), later ones only `function.arguments`.
  A custom tool's call (`type: "custom"`) carries `custom.name` and `custom.input` the same
  way. Fragments of several calls may interleave. A call never named is left out.
- `Finish` is one chunk with an empty delta and `finish_reason` (`stop`, `tool_calls` when
  tools were called, `length`, `content_filter`), then, with `include_usage`, one chunk
  with empty `choices` and the usage (every earlier chunk has `"usage": null`).
- `Failure` is one `{"error": {...}}` object (OpenAI's error shape); the stream then ends.
  Without streaming, `result()` raises that error as an `ApiError`.
- After `Finish` or `Failure` the builder takes no more signals (`ChatBuilderError`).
"""

from __future__ import annotations

from typing import Any

from ...protocol.errors import failure_error
from ...protocol.ids import new_id
from ...protocol.response import response_signals
from ...protocol.signals import (
    Annotation,
    Failure,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Signal,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ...protocol.surface import SurfaceFactory
from ...sse import DONE_FRAME, SSEFrames, encode_json

Chunk = dict[str, Any]
FINISH_REASONS = {
    "stop": "stop",
    "max_output_tokens": "length",
    "max_steps": "length",
    "content_filter": "content_filter",
}
# A call's fields by its kind: where its name and its arguments (a custom tool's `input`) go.
CALL_FIELDS = {"function": "arguments", "custom": "input"}


class ChatBuilderError(Exception):
    """A signal the builder cannot take (a bug in whoever feeds it)."""


COMPLETION_PREFIX = "chatcmpl-"


def completion_id(response_id: str) -> str:
    """The Chat Completions id of a response: `chatcmpl-` and the response id's digits."""
    return COMPLETION_PREFIX + response_id.removeprefix("resp_")


def usage_object(usage: Usage | None) -> dict[str, Any]:
    """A `Usage` signal in Chat Completions' shape (zeros when the upstream sent none)."""
    u = usage or Usage(0, 0)
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def error_object(code: str, message: str) -> dict[str, Any]:
    """A failure in OpenAI's error shape."""
    return {"error": {"message": message, "type": "server_error", "param": None, "code": code}}


def citation(annotation: dict[str, Any]) -> dict[str, Any] | None:
    """A Responses `url_citation` annotation as Chat Completions writes it (None: no form)."""
    if annotation.get("type") != "url_citation":
        return None
    fields = ("url", "title", "start_index", "end_index")
    return {"type": "url_citation", "url_citation": {k: annotation.get(k) for k in fields}}


class _Call:
    __slots__ = ("arguments", "call_id", "index", "kind", "name")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "function" or "custom": the tool call's `type`
        self.call_id: str | None = None
        self.name: str | None = None
        self.arguments = ""
        self.index = -1  # the Chat Completions index, once named

    def body(self, arguments: str, name: str | None = None) -> dict[str, Any]:
        """The call's `function` or `custom` object: its name (when given) and arguments."""
        named = {} if name is None else {"name": name}
        return {self.kind: {**named, CALL_FIELDS[self.kind]: arguments}}

    def wire(self) -> dict[str, Any]:
        """The whole call, as a `chat.completion` message lists it."""
        return {"id": self.call_id, "type": self.kind, **self.body(self.arguments, self.name)}


class ChatBuilder:
    """One chat completion's chunks, from the run's signals."""

    def __init__(self, response: dict[str, Any], *, include_usage: bool = False) -> None:
        self.id = completion_id(response["id"])
        self.created = response["created_at"]
        self.model = response["model"]
        self.include_usage = include_usage
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._calls: dict[int, _Call] = {}  # by the upstream's index
        self.calls: list[_Call] = []  # named, in Chat Completions order
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.error is not None

    def _chunk(self, delta: dict[str, Any], **choice: Any) -> Chunk:
        chunk: Chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": choice.get("logprobs"),
                    "finish_reason": choice.get("finish_reason"),
                }
            ],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def open(self) -> list[Chunk]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def feed(self, signal: Signal) -> list[Chunk]:
        if self.done:
            raise ChatBuilderError(f"{type(signal).__name__} after the end of the stream")
        if isinstance(signal, TextDelta):
            return self._text(signal)
        if isinstance(signal, RefusalDelta):
            return self._delta(self.refusal, "refusal", signal.text)
        if isinstance(signal, ReasoningDelta):
            return self._delta(self.reasoning, "reasoning_content", signal.text)
        if isinstance(signal, ToolCallDelta):
            return self._tool_call(signal)
        if isinstance(signal, Annotation):
            found = citation(signal.annotation)
            if found is None:
                return []
            self.annotations.append(found)
            return [self._chunk({"annotations": [found]})]
        if isinstance(signal, Usage):
            self.usage = signal
            return []
        if isinstance(signal, Finish):
            return self._finish(signal)
        if isinstance(signal, Failure):
            self.error = error_object(signal.code, signal.message)
            return [self.error]
        return []  # opaque reasoning, compaction, hosted items: no Chat Completions form

    def _delta(self, kept: list[str], field: str, text: str) -> list[Chunk]:
        if not text:
            return []
        kept.append(text)
        return [self._chunk({field: text})]

    def _text(self, signal: TextDelta) -> list[Chunk]:
        if not signal.logprobs:
            return self._delta(self.content, "content", signal.text)
        self.content.append(signal.text)
        self.logprobs += signal.logprobs
        logprobs = {"content": list(signal.logprobs), "refusal": None}
        return [self._chunk({"content": signal.text}, logprobs=logprobs)]

    def _tool_call(self, signal: ToolCallDelta) -> list[Chunk]:
        call = self._calls.setdefault(signal.index, _Call(signal.kind))
        call.call_id = call.call_id or signal.call_id
        if call.index >= 0:
            if not signal.arguments:
                return []
            call.arguments += signal.arguments
            fragment = {"index": call.index, **call.body(signal.arguments)}
            return [self._chunk({"tool_calls": [fragment]})]
        call.arguments += signal.arguments
        call.name = call.name or signal.name
        if not call.name:
            return []  # buffered until the call is named
        call.call_id = call.call_id or new_id("call")
        call.index = len(self.calls)
        self.calls.append(call)
        return [self._chunk({"tool_calls": [{"index": call.index, **call.wire()}]})]

    def _finish(self, signal: Finish) -> list[Chunk]:
        reason = FINISH_REASONS[signal.reason]
        self.finish_reason = "tool_calls" if reason == "stop" and self.calls else reason
        out = [self._chunk({}, finish_reason=self.finish_reason)]
        if self.include_usage:
            out.append({**out[0], "choices": [], "usage": usage_object(self.usage)})
        return out

    def message(self) -> dict[str, Any]:
        """The assistant message so far, as a `chat.completion` choice holds it."""
        text = "".join(self.content)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or (None if self.calls or self.refusal else ""),
            "refusal": "".join(self.refusal) or None,
            "annotations": list(self.annotations),
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [call.wire() for call in self.calls]
        return message

    def result(self) -> dict[str, Any]:
        """The `chat.completion` object; a failed run raises its error as an `ApiError`
        (502; 504 for an upstream timeout, 500 for the gateway's own): a failure is never a 200."""
        if self.error is not None:
            error = self.error["error"]
            raise failure_error(error["code"], error["message"])
        if self.finish_reason is None:
            raise ChatBuilderError("result() before the end of the stream")
        logprobs = {"content": self.logprobs, "refusal": None} if self.logprobs else None
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": self.message(),
                    "logprobs": logprobs,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": usage_object(self.usage),
        }


def completion_of(response: dict[str, Any]) -> dict[str, Any]:
    """The `chat.completion` of a stored Response (`GET /v1/chat/completions/{id}`): its
    output fed again, as signals, to a `ChatBuilder`, so a stored completion is the one the
    client got; with the Response's `metadata`, as OpenAI shows a stored completion."""
    builder = ChatBuilder(response)
    for signal in response_signals(response):
        builder.feed(signal)
    return {**builder.result(), "metadata": response.get("metadata") or {}}


def chat_surface(include_usage: bool) -> SurfaceFactory:
    """The `SurfaceFactory` of one Chat Completions request."""

    def make(response: dict[str, Any], provider: str) -> ChatBuilder:
        return ChatBuilder(response, include_usage=include_usage)

    return make


def encode_chunk(chunk: Chunk) -> bytes:
    """One SSE frame for one chunk, as OpenAI writes it: `data:` only, no `event:`."""
    return b"data: " + encode_json(chunk) + b"\n\n"


CHAT_FRAMES = SSEFrames(encode_chunk, DONE_FRAME)
