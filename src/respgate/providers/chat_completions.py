"""Provider `chat_completions`: any OpenAI-compatible `POST /chat/completions`
(vLLM, Ollama, llama.cpp, SGLang, Groq, DeepSeek, OpenRouter, ...).

Request out (`request_body`) and stream in (`ChatTranslator`); every rule is
listed in docs/providers.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from ..protocol.errors import quote
from ..protocol.items import uncalled_output_text
from ..protocol.signals import (
    Failure,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Signal,
    TextDelta,
    Usage,
)
from . import faults
from .base import ModelCall
from .http import HttpProvider
from .think import ThinkTags
from .tools import FlatTool, ToolCalls, ToolTable, call_arguments

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "stop",
    "function_call": "stop",
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}

# ---------------------------------------------------------------- request out


def text_of(content: str | list[dict[str, Any]], sep: str = "\n") -> str:
    """The text of a string or of a part array's text-bearing parts."""
    if isinstance(content, str):
        return content
    return sep.join(
        p.get("text", "") for p in content if p.get("type") in ("input_text", "output_text", "text")
    )


def _user_part(part: dict[str, Any], warn: Any) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind in ("input_text", "text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image" and part.get("image_url"):
        image = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and (part.get("file_data") or part.get("file_id")):
        return {
            "type": "file",
            "file": {k: part[k] for k in ("filename", "file_data", "file_id") if part.get(k)},
        }
    warn(f"input part {quote(kind)} without inline data is not supported and was dropped")
    return None


def _user_content(content: str | list[dict[str, Any]], warn: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts = [p for p in (_user_part(part, warn) for part in content) if p is not None]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _assistant_message(item: dict[str, Any]) -> dict[str, Any]:
    content = item.get("content") or ""
    msg: dict[str, Any] = {"role": "assistant", "content": text_of(content, "") or None}
    if isinstance(content, list):
        refusal = "".join(p.get("refusal", "") for p in content if p.get("type") == "refusal")
        if refusal:
            msg["refusal"] = refusal
    return msg


def _reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's raw text (its summary when it has none)."""
    parts = item.get("content") or item.get("summary") or []
    return "".join(p.get("text", "") for p in parts)


def messages(
    call: ModelCall, table: ToolTable, send_reasoning: bool = False
) -> list[dict[str, Any]]:
    """The Chat Completions `messages` for a call's instructions and items. With
    `send_reasoning`, earlier reasoning goes back as the `reasoning_content` of the
    assistant message that follows it (DeepSeek, vLLM); otherwise it is left out."""
    out: list[dict[str, Any]] = []
    reasoning: list[str] = []  # reasoning items waiting for their assistant message
    if call.instructions:
        out.append({"role": "system", "content": call.instructions})
    assistant: dict[str, Any] | None = None  # the assistant message a following tool call joins
    for item in call.items:
        kind = item["type"]
        if kind == "message":
            role = item["role"]
            if role == "assistant":
                assistant = _assistant_message(item)
                if reasoning:
                    assistant["reasoning_content"] = "".join(reasoning)
                    reasoning = []
                out.append(assistant)
                continue
            assistant = None
            reasoning = []
            if role in ("system", "developer"):
                out.append({"role": "system", "content": text_of(item["content"])})
            else:
                out.append({"role": "user", "content": _user_content(item["content"], table.warn)})
        elif kind in ("function_call", "custom_tool_call"):
            if assistant is None:
                assistant = {"role": "assistant", "content": None}
                if reasoning:
                    assistant["reasoning_content"] = "".join(reasoning)
                    reasoning = []
                out.append(assistant)
            name, arguments = call_arguments(item)
            assistant.setdefault("tool_calls", []).append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            assistant = None
            reasoning = []
            output = item.get("output", "")
            if isinstance(output, list) and any(
                p.get("type") not in ("input_text", "output_text") for p in output
            ):
                table.warn("non-text parts of a tool output are not supported and were dropped")
            if item.get("call_id") is None:  # it answers no call: context for the model
                out.append({"role": "user", "content": uncalled_output_text(item, text_of(output))})
            else:
                out.append(
                    {"role": "tool", "tool_call_id": item["call_id"], "content": text_of(output)}
                )
        elif kind == "reasoning":
            if send_reasoning and (text := _reasoning_text(item)):
                reasoning.append(text)
                assistant = None  # the reasoning opens the next assistant message
        else:
            table.warn(f"input item type {quote(kind)} is not supported and was dropped")
    return out


def _tool(tool: FlatTool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.wire_name, "parameters": tool.parameters}
    if tool.description:
        fn["description"] = tool.description
    if tool.strict:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def request_body(
    call: ModelCall, provider: str, warnings: list[str], send_reasoning: bool = False
) -> dict[str, Any]:
    req = call.request
    table = ToolTable(req.tools, provider, warnings)
    choice = table.choice(req.tool_choice)
    body: dict[str, Any] = {
        "model": call.model,
        "messages": messages(call, table, send_reasoning),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if table.tools:
        body["tools"] = [_tool(t) for t in table.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if choice.mode == "function"
                else choice.mode
            )
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        schema = {"name": fmt.name, "schema": fmt.schema}
        if fmt.description:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    if req.stop:
        body["stop"] = req.stop
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    user = req.safety_identifier or req.user
    if user:
        body["user"] = user
    if LOGPROBS in (req.include or ()):
        body["logprobs"] = True
        if req.top_logprobs:
            body["top_logprobs"] = req.top_logprobs
    return body


LOGPROBS = "message.output_text.logprobs"  # the `include` value that asks for them


def logprobs_of(choice_logprobs: Any) -> tuple[dict[str, Any], ...]:
    """A chunk's `logprobs.content` in the Responses shape (`bytes` filled in where null)."""
    content = choice_logprobs.get("content") if isinstance(choice_logprobs, dict) else None
    if not content:
        return ()

    def entry(e: dict[str, Any]) -> dict[str, Any]:
        raw = e.get("bytes")
        token = e.get("token") or ""
        return {"token": token, "logprob": e.get("logprob", 0.0),
                "bytes": raw if isinstance(raw, list) else list(token.encode())}  # fmt: skip

    return tuple(
        {**entry(e), "top_logprobs": [entry(t) for t in e.get("top_logprobs") or ()]}
        for e in content
        if isinstance(e, dict)
    )


# ---------------------------------------------------------------- stream in


def usage_of(usage: dict[str, Any]) -> Usage:
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_tokens=prompt.get("cached_tokens") or 0,
        reasoning_tokens=completion.get("reasoning_tokens") or 0,
    )


def inband_error(chunk: dict[str, Any], provider: str) -> Failure | None:
    """`{"error": {...}}` or a flat `{"object": "error", ...}` sent after HTTP 200."""
    err = chunk.get("error")
    if not err and chunk.get("object") != "error":
        return None
    if not isinstance(err, dict):
        err = chunk if chunk.get("object") == "error" else {"message": str(err)}
    return faults.failed(provider, err.get("code") or err.get("type"), err.get("message"))


class _Delta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: Any = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None
    logprobs: Any = None


class _Chunk(msgspec.Struct):
    """The common shape of a chunk, typed: decoding it is cheaper than a dict and
    `.get()` chains. Anything else (an error, a field of another type, malformed
    JSON) fails to decode and takes the general path, `_feed_dict`."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None
    object: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class ChatTranslator:
    """Chat Completions chunks in, signals out. Sans-IO."""

    def __init__(self, table: ToolTable, provider: str) -> None:
        self.provider = provider
        self._calls = ToolCalls(table)
        self._finish: FinishReason | None = None
        self._ids: dict[str, int] = {}  # call id -> index, for backends that omit `index`
        self._think = ThinkTags()

    def feed(self, event: str, data: str) -> list[Signal]:
        if data == "[DONE]":
            return self._end(self._finish or "stop")
        try:
            chunk = _decode_chunk(data)
        except msgspec.DecodeError:  # malformed, or not the common shape
            return self._feed_dict(data)
        if chunk.error or chunk.object == "error":
            return self._feed_dict(data)
        out: list[Signal] = []
        for choice in chunk.choices or ():
            if choice.index == 0:
                delta = choice.delta
                if delta is not None:
                    self._delta(delta.reasoning_content or delta.reasoning, delta.content,
                                delta.refusal, delta.tool_calls, out, choice.logprobs)  # fmt: skip
                if choice.finish_reason:
                    self._finish = FINISH_REASONS.get(choice.finish_reason, "stop")
        if chunk.usage:
            out.append(usage_of(chunk.usage))
        return out

    def _feed_dict(self, data: str) -> list[Signal]:
        chunk = faults.decode(self.provider, data)
        if isinstance(chunk, Failure):
            return [chunk]
        failure = inband_error(chunk, self.provider)
        if failure is not None:
            return [failure]
        out: list[Signal] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) == 0:
                self._choice(choice, out)
        usage = chunk.get("usage")
        if usage:
            out.append(usage_of(usage))
        return out

    def _choice(self, choice: dict[str, Any], out: list[Signal]) -> None:
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        self._delta(
            reasoning,
            delta.get("content"),
            delta.get("refusal"),
            delta.get("tool_calls"),
            out,
            choice.get("logprobs"),
        )
        reason = choice.get("finish_reason")
        if reason:
            self._finish = FINISH_REASONS.get(reason, "stop")

    def _delta(
        self,
        reasoning: Any,
        content: Any,
        refusal: Any,
        tool_calls: Any,
        out: list[Signal],
        logprobs: Any = None,
    ) -> None:
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningDelta(reasoning, "raw"))
        if content:
            signals = self._think.feed(content)
            lps = logprobs_of(logprobs) if logprobs else ()
            if lps:  # on the chunk's first answer text (none there: they were for reasoning)
                first = next((n for n, s in enumerate(signals) if isinstance(s, TextDelta)), None)
                if first is not None:
                    signals[first] = TextDelta(signals[first].text, lps)  # type: ignore[union-attr]
            out.extend(signals)
        if refusal:
            out.append(RefusalDelta(refusal))
        for position, call in enumerate(tool_calls or ()):
            fn = call.get("function") or {}
            signal = self._calls.fragment(
                self._index(call, position),
                call.get("id"),
                fn.get("name"),
                fn.get("arguments") or "",
            )
            if signal is not None:
                out.append(signal)

    def _index(self, call: dict[str, Any], position: int) -> int:
        index = call.get("index")
        if isinstance(index, int):
            if call.get("id"):
                self._ids.setdefault(call["id"], index)
            return index
        call_id = call.get("id")
        if call_id:
            return self._ids.setdefault(call_id, len(self._ids))
        return max(self._ids.values(), default=position)

    def _end(self, reason: FinishReason) -> list[Signal]:
        return [*self._think.end(), *self._calls.flush(), Finish(reason)]

    def end(self) -> list[Signal]:
        if self._finish is not None:  # finished, but the usage chunk or [DONE] never came
            return self._end(self._finish)
        return [faults.truncated(self.provider, "finish_reason")]


class ChatCompletionsProvider(HttpProvider):
    kind: ClassVar[str] = "chat_completions"
    path: ClassVar[str] = "/chat/completions"

    def request_body(self, call: ModelCall, warnings: list[str]) -> dict[str, Any]:
        return request_body(call, self.name, warnings, self.config.send_reasoning)

    def translator(self, call: ModelCall) -> ChatTranslator:
        return ChatTranslator(ToolTable(call.request.tools, self.name, []), self.name)
