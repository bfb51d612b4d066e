"""Provider `anthropic`: the Messages API (`POST /messages`, `stream: true`).

Request out (`request_body`) and stream in (`AnthropicTranslator`); the rules
are listed in docs/providers.md. Thinking signatures travel as the reasoning
item's `encrypted_content` and go back byte-for-byte; a `redacted_thinking`
block's data travels the same way behind the `REDACTED` prefix.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from ..protocol.errors import quote
from ..protocol.items import uncalled_output_text
from ..protocol.signals import (
    Failure,
    Finish,
    FinishReason,
    ReasoningDelta,
    ReasoningOpaque,
    Signal,
    TextDelta,
    Usage,
)
from . import faults
from .base import ModelCall
from .chat_completions import text_of
from .http import HttpProvider
from .tools import ToolCalls, ToolTable, call_arguments

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
REDACTED = "redacted_thinking:"
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}

# ---------------------------------------------------------------- request out


def _source(url: str) -> dict[str, Any] | None:
    """An Anthropic `source` for a data: URL (base64) or an http(s) URL."""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head[5:].split(";")[0]
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    return None


def _blocks(content: str | list[dict[str, Any]], table: ToolTable) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            if part.get("text"):
                out.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            out.append({"type": "text", "text": part.get("refusal", "")})
        elif kind == "input_image" and (source := _source(part.get("image_url") or "")):
            out.append({"type": "image", "source": source})
        elif kind == "input_file" and (
            source := _source(part.get("file_data") or part.get("file_url") or "")
        ):
            out.append({"type": "document", "source": source})
        else:
            table.warn(
                f"input part {quote(kind)} without inline data is not supported and was dropped"
            )
    return out


def _reasoning_block(item: dict[str, Any]) -> dict[str, Any] | None:
    opaque = item.get("encrypted_content")
    if not opaque:
        return None  # thinking without its signature cannot go back to Anthropic
    if opaque.startswith(REDACTED):
        return {"type": "redacted_thinking", "data": opaque[len(REDACTED) :]}
    thinking = "".join(p.get("text", "") for p in item.get("summary") or [])
    return {"type": "thinking", "thinking": thinking, "signature": opaque}


class _Turns:
    """Messages with consecutive same-role turns merged into one."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def add(self, role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].extend(blocks)
        else:
            self.messages.append({"role": role, "content": list(blocks)})


def tool_input(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def system_and_messages(
    call: ModelCall, table: ToolTable
) -> tuple[list[str], list[dict[str, Any]]]:
    system = [call.instructions] if call.instructions else []
    turns = _Turns()
    for item in call.items:
        kind = item["type"]
        if kind == "message":
            role = item["role"]
            if role in ("system", "developer"):
                system.append(text_of(item["content"]))
            else:
                turns.add(role, _blocks(item["content"], table))
        elif kind == "reasoning":
            block = _reasoning_block(item)
            if block is not None:
                turns.add("assistant", [block])
        elif kind in ("function_call", "custom_tool_call"):
            name, arguments = call_arguments(item)
            turns.add(
                "assistant",
                [
                    {
                        "type": "tool_use",
                        "id": item["call_id"],
                        "name": name,
                        "input": tool_input(arguments),
                    }
                ],
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output", "")
            if item.get("call_id") is None:  # it answers no call: context for the model
                text = uncalled_output_text(item, text_of(output))
                turns.add("user", [{"type": "text", "text": text}])
            else:
                content: Any = output if isinstance(output, str) else _blocks(output, table)
                turns.add(
                    "user",
                    [{"type": "tool_result", "tool_use_id": item["call_id"], "content": content}],
                )
        else:
            table.warn(f"input item type {quote(kind)} is not supported and was dropped")
    return system, turns.messages


def request_body(call: ModelCall, provider: str, warnings: list[str]) -> dict[str, Any]:
    req = call.request
    table = ToolTable(req.tools, provider, warnings)
    choice = table.choice(req.tool_choice)
    system, msgs = system_and_messages(call, table)
    max_tokens = req.max_output_tokens or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {
        "model": call.model,
        "max_tokens": max_tokens,
        "messages": msgs,
        "stream": True,
    }
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        hint = "Respond with a single JSON object and nothing else."
        if fmt.schema is not None:
            hint += " It must match this JSON schema: " + orjson.dumps(fmt.schema).decode()
        system.append(hint)
    if system:
        body["system"] = "\n\n".join(system)
    if req.stop:
        body["stop_sequences"] = req.stop
    if table.tools:
        body["tools"] = [
            {"name": t.wire_name, "description": t.description or "", "input_schema": t.parameters}
            for t in table.tools
        ]
        tool_choice: dict[str, Any] = {
            "auto": {"type": "auto"},
            "none": {"type": "none"},
            "required": {"type": "any"},
            "function": {"type": "tool", "name": choice.name},
        }[choice.mode]
        if req.parallel_tool_calls is False and choice.mode != "none":
            tool_choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = tool_choice
    effort = req.reasoning.effort if req.reasoning else None
    budget = min(THINKING_BUDGETS.get(effort or "none", 0), max_tokens - 1)
    if budget >= MIN_THINKING_BUDGET:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if req.temperature is not None or req.top_p is not None:
            table.warn(
                "temperature and top_p are not allowed with extended thinking and were dropped"
            )
    else:
        for key in ("temperature", "top_p"):
            if getattr(req, key) is not None:
                body[key] = getattr(req, key)
    if req.safety_identifier or req.user:
        body["metadata"] = {"user_id": req.safety_identifier or req.user}
    return body


# ---------------------------------------------------------------- stream in


class AnthropicTranslator:
    """Messages stream events in, signals out. Sans-IO."""

    def __init__(self, table: ToolTable, provider: str) -> None:
        self.provider = provider
        self._calls = ToolCalls(table)
        self._blocks: dict[int, str] = {}  # block index -> block type
        self._signatures: dict[int, str] = {}
        self._has_input: set[int] = set()
        self._usage: dict[str, int] = {}
        self._finish: FinishReason = "stop"
        self._stop_sequence: str | None = None

    def feed(self, event: str, data: str) -> list[Signal]:
        ev = faults.decode(self.provider, data)
        if isinstance(ev, Failure):
            return [ev]
        kind = ev.get("type")
        handler = self._handlers.get(kind or "")
        return handler(self, ev) if handler is not None else []

    def _message_start(self, ev: dict[str, Any]) -> list[Signal]:
        return self._usage_signal((ev.get("message") or {}).get("usage"))

    def _block_start(self, ev: dict[str, Any]) -> list[Signal]:
        index, block = ev.get("index", 0), ev.get("content_block") or {}
        kind = self._blocks[index] = block.get("type", "")
        if kind == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(block["thinking"])]
        if kind == "redacted_thinking":
            return [ReasoningOpaque(REDACTED + block.get("data", ""))]
        if kind == "tool_use":
            initial = block.get("input")
            arguments = orjson.dumps(initial).decode() if initial else ""
            if arguments:
                self._has_input.add(index)
            signal = self._calls.fragment(index, block.get("id"), block.get("name"), arguments)
            return [signal] if signal is not None else []
        return []  # server tool blocks and the like are not represented

    def _block_delta(self, ev: dict[str, Any]) -> list[Signal]:
        index, delta = ev.get("index", 0), ev.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(delta.get("text", ""))]
        if kind == "thinking_delta":
            return [ReasoningDelta(delta.get("thinking", ""))]
        if kind == "signature_delta":
            self._signatures[index] = self._signatures.get(index, "") + delta.get("signature", "")
        elif (
            kind == "input_json_delta"
            and self._blocks.get(index) == "tool_use"
            and delta.get("partial_json")
        ):
            self._has_input.add(index)
            signal = self._calls.fragment(index, None, None, delta["partial_json"])
            return [signal] if signal is not None else []
        return []

    def _block_stop(self, ev: dict[str, Any]) -> list[Signal]:
        index = ev.get("index", 0)
        kind = self._blocks.get(index)
        if kind == "thinking" and index in self._signatures:
            return [ReasoningOpaque(self._signatures.pop(index))]
        if kind == "tool_use" and index not in self._has_input:  # "" means {}
            signal = self._calls.fragment(index, None, None, "{}")
            return [signal] if signal is not None else []
        return []

    def _message_delta(self, ev: dict[str, Any]) -> list[Signal]:
        delta = ev.get("delta") or {}
        reason = delta.get("stop_reason")
        if reason:
            self._finish = STOP_REASONS.get(reason, "stop")
        if reason == "stop_sequence" and isinstance(delta.get("stop_sequence"), str):
            self._stop_sequence = delta["stop_sequence"]
        return self._usage_signal(ev.get("usage"))

    def _message_stop(self, ev: dict[str, Any]) -> list[Signal]:
        return [*self._calls.flush(), Finish(self._finish, self._stop_sequence)]

    def _error(self, ev: dict[str, Any]) -> list[Signal]:
        err = ev.get("error") or {}
        return [faults.failed(self.provider, err.get("type"), err.get("message"))]

    def _usage_signal(self, usage: dict[str, Any] | None) -> list[Signal]:
        """Anthropic usage is cumulative: newer values replace older ones."""
        if not usage:
            return []
        self._usage.update({k: v for k, v in usage.items() if isinstance(v, int)})
        u = self._usage
        cached = u.get("cache_read_input_tokens", 0)
        written = u.get("cache_creation_input_tokens", 0)
        total_input = u.get("input_tokens", 0) + cached + written
        return [
            Usage(
                total_input,
                u.get("output_tokens", 0),
                cached_tokens=cached,
                cache_write_tokens=written,
            )
        ]

    def end(self) -> list[Signal]:
        return [faults.truncated(self.provider, "message_stop")]

    _handlers: ClassVar[dict[str, Any]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "content_block_stop": _block_stop,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }


class AnthropicProvider(HttpProvider):
    kind: ClassVar[str] = "anthropic"
    path: ClassVar[str] = "/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def request_body(self, call: ModelCall, warnings: list[str]) -> dict[str, Any]:
        return request_body(call, self.name, warnings)

    def translator(self, call: ModelCall) -> AnthropicTranslator:
        return AnthropicTranslator(ToolTable(call.request.tools, self.name, []), self.name)
