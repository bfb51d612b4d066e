"""The strict checker for Chat Completions chunk streams, and the fold of a stream into
the `chat.completion` object it stands for. Sans-IO, independent of `ChatBuilder`.

A stream is the decoded `data:` payloads in order, the end marker as the string
`"[DONE]"`. The rules are `RULES`; `check_chunks` returns every violation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...protocol.validate import Violation

DONE = "[DONE]"
CALL_FIELDS = {"function": "arguments", "custom": "input"}  # a tool call's type: its text
DELTA_FIELDS = frozenset(
    {"role", "content", "refusal", "reasoning_content", "tool_calls", "annotations"}
)
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
ERROR_FIELDS = ("message", "type", "param", "code")

RULES = {
    "json": "every frame is one JSON object",
    "chunk": "a chunk has id, object chat.completion.chunk, created and model, the same in all",
    "choices": "a chunk has one choice, index 0, with a delta of known fields",
    "role": "the first chunk's delta has role assistant; no later delta has a role",
    "tool_call": "tool call indices count 0, 1, 2 ...; id, type and name in the first "
    "fragment only; a function call's arguments, a custom call's input are text, under its "
    "type's key only",
    "finish": "exactly one chunk has a finish_reason, with an empty delta; tool_calls "
    "exactly when tools were called (or the reason is length/content_filter)",
    "usage": "with include_usage: usage null on every chunk but the last, which has empty "
    "choices and the usage; without: no usage",
    "error": "an error frame is OpenAI's error object and the last frame",
    "terminal": "the stream ends with the finish (and usage) or one error",
    "done": "data: [DONE] ends the stream and nothing follows it",
}


class ChunkChecker:
    """Feed frames one by one; `close()` gives the violations."""

    def __init__(self, *, include_usage: bool = False) -> None:
        self.include_usage = include_usage
        self.violations: list[Violation] = []
        self.position = -1
        self.identity: tuple[Any, ...] | None = None
        self.seen_done = False
        self.finished = False  # the finish_reason chunk was seen
        self.usage_seen = False
        self.errored = False
        self.calls: list[str] = []  # the tool calls' types ("function", "custom"), by index

    def _fail(self, rule: str, message: str, kind: str | None = None) -> None:
        self.violations.append(Violation(rule, message, self.position, kind))

    def feed(self, frame: dict[str, Any] | str) -> None:
        self.position += 1
        if self.seen_done:
            self._fail("done", "a frame after [DONE]")
            return
        if frame == DONE:
            self.seen_done = True
            return
        if not isinstance(frame, dict):
            self._fail("json", f"not a JSON object: {frame!r}")
            return
        if self.errored or self.usage_seen:
            self._fail("terminal", "a frame after the stream's end")
        if "error" in frame:
            self._error(frame)
            return
        self._chunk(frame)

    def _error(self, frame: dict[str, Any]) -> None:
        error = frame["error"]
        if not isinstance(error, dict) or any(k not in error for k in ERROR_FIELDS):
            self._fail("error", f"the error object needs {', '.join(ERROR_FIELDS)}", "error")
        if self.finished:
            self._fail("terminal", "an error after the finish chunk", "error")
        self.errored = True

    def _chunk(self, chunk: dict[str, Any]) -> None:
        kind = "chunk"
        identity = (chunk.get("id"), chunk.get("created"), chunk.get("model"))
        if chunk.get("object") != "chat.completion.chunk" or not isinstance(identity[0], str):
            self._fail("chunk", "object must be chat.completion.chunk with a string id", kind)
        if self.identity is None:
            self.identity = identity
        elif identity != self.identity:
            self._fail("chunk", f"id/created/model {identity} differ from {self.identity}", kind)
        choices = chunk.get("choices")
        usage = chunk.get("usage", "absent")
        if choices == []:
            self._usage(chunk, usage)
            return
        if self.include_usage and usage is not None:
            self._fail("usage", "usage must be null on a chunk with choices", kind)
        if not self.include_usage and usage != "absent":
            self._fail("usage", "usage without include_usage", kind)
        if not isinstance(choices, list) or len(choices) != 1 or choices[0].get("index") != 0:
            self._fail("choices", "exactly one choice, index 0", kind)
            return
        choice = choices[0]
        delta = choice.get("delta")
        if not isinstance(delta, dict) or not delta.keys() <= DELTA_FIELDS:
            self._fail("choices", f"a delta of known fields, got {delta!r}", kind)
            return
        first = self.position == 0
        if first != ("role" in delta) or (first and delta["role"] != "assistant"):
            self._fail("role", "role assistant in the first delta and only there", kind)
        logprobs = choice.get("logprobs")
        if logprobs is not None and not (
            isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list)
        ):
            self._fail("choices", "logprobs is null or {content: [...]}", kind)
        for field in ("content", "refusal", "reasoning_content"):
            if field in delta and not isinstance(delta[field], str):
                self._fail("choices", f"{field} must be text", kind)
        for call in delta.get("tool_calls") or ():
            self._tool_call(call)
        if self.finished:
            self._fail("finish", "a chunk with choices after the finish chunk", kind)
        reason = choice.get("finish_reason")
        if reason is not None:
            self._finish(reason, delta)

    def _tool_call(self, call: Any) -> None:
        kind = "tool_call"
        index = call.get("index") if isinstance(call, dict) else None
        if not isinstance(index, int) or index > len(self.calls):
            self._fail(kind, f"index {index!r} where at most {len(self.calls)} may come", kind)
            return
        first = index == len(self.calls)
        call_type = call.get("type") if first else self.calls[index]
        field = CALL_FIELDS.get(call_type)  # type: ignore[arg-type]
        body = call.get(call_type) if field else None
        if not isinstance(body, dict) or not isinstance(body.get(field, ""), str):
            self._fail(kind, f"call {index}: {call_type}.{field} must be text", kind)
            if first:
                self.calls.append(str(call_type))
            return
        if (CALL_FIELDS.keys() - {call_type}) & call.keys():
            self._fail(
                kind, f"call {index}: a {call_type} call's fragment under another type", kind
            )
        if first:
            if not (isinstance(call.get("id"), str) and isinstance(body.get("name"), str)):
                self._fail(kind, f"call {index}'s first fragment needs id, type and name", kind)
            self.calls.append(call_type)
        elif {"id", "type"} & call.keys() or "name" in body:
            self._fail(kind, f"call {index}: id, type or name after its first fragment", kind)

    def _finish(self, reason: Any, delta: dict[str, Any]) -> None:
        kind = "finish"
        if reason not in FINISH_REASONS:
            self._fail(kind, f"unknown finish_reason {reason!r}", kind)
        if delta:
            self._fail(kind, "the finish chunk's delta must be empty", kind)
        if (reason == "tool_calls") != bool(self.calls) and reason not in (
            "length",
            "content_filter",
        ):
            self._fail(kind, f"finish_reason {reason!r} with {len(self.calls)} tool calls", kind)
        self.finished = True

    def _usage(self, chunk: dict[str, Any], usage: Any) -> None:
        if not self.include_usage:
            self._fail("usage", "a usage chunk without include_usage", "usage")
        if not self.finished:
            self._fail("usage", "the usage chunk before the finish chunk", "usage")
        if not isinstance(usage, dict) or any(type(usage.get(k)) is not int for k in USAGE_FIELDS):
            self._fail("usage", f"usage needs {', '.join(USAGE_FIELDS)}", "usage")
        elif usage["total_tokens"] != usage["prompt_tokens"] + usage["completion_tokens"]:
            self._fail("usage", "total_tokens must be prompt_tokens + completion_tokens", "usage")
        self.usage_seen = True

    def close(self) -> list[Violation]:
        self.position = -1
        if not self.seen_done:
            self._fail("done", "the stream did not end with [DONE]")
        if not (self.finished or self.errored):
            self._fail("terminal", "neither a finish chunk nor an error")
        elif self.finished and self.include_usage and not self.usage_seen:
            self._fail("usage", "include_usage, and no usage chunk")
        return self.violations


def check_chunks(
    frames: Iterable[dict[str, Any] | str], *, include_usage: bool = False
) -> list[Violation]:
    """Check a whole chunk stream; returns every violation (empty: the stream is correct)."""
    checker = ChunkChecker(include_usage=include_usage)
    for frame in frames:
        checker.feed(frame)
    return checker.close()


def fold_chunks(frames: Iterable[dict[str, Any] | str]) -> dict[str, Any]:
    """The `chat.completion` a (correct) chunk stream stands for, or its error object."""
    text: dict[str, list[str]] = {"content": [], "refusal": [], "reasoning_content": []}
    calls: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    logprobs: list[dict[str, Any]] = []
    head: dict[str, Any] = {}
    reason = usage = None
    for frame in frames:
        if frame == DONE:
            break
        assert isinstance(frame, dict)
        if "error" in frame:
            return frame
        head = head or frame
        usage = frame.get("usage") or usage
        for choice in frame["choices"]:
            delta = choice["delta"]
            for field, kept in text.items():
                kept.append(delta.get(field) or "")
            annotations += delta.get("annotations") or ()
            logprobs += (choice.get("logprobs") or {}).get("content") or ()
            reason = choice.get("finish_reason") or reason
            for call in delta.get("tool_calls") or ():
                if call["index"] == len(calls):
                    kind, name = call["type"], call[call["type"]]["name"]
                    calls.append({"id": call["id"], "type": kind, kind: {"name": name}})
                whole = calls[call["index"]]
                kind, field = whole["type"], CALL_FIELDS[whole["type"]]
                whole[kind][field] = whole[kind].get(field, "") + call[kind][field]
    content, refusal, reasoning = ("".join(text[f]) for f in text)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content if content or not (calls or refusal) else None,
        "refusal": refusal or None,
        "annotations": annotations,
    }
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": {"content": logprobs, "refusal": None} if logprobs else None,
                "finish_reason": reason,
            }
        ],
        "usage": usage,
    }
