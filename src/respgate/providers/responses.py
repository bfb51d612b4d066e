"""Provider `responses`: a native Responses upstream (OpenAI, or another respgate).

The request passes through, with the whole context as `input` (respgate
resolves `previous_response_id` itself, so the upstream gets none, and
`store: false`). The upstream's event stream is parsed back into signals and
re-emitted by our `ResponseBuilder`, so our ids, `sequence_number` and
lifecycle guarantees hold whatever the upstream does.

Items of tools the upstream runs itself (web search, file search, code
interpreter, image generation, MCP) pass through as `HostedItem` signals with
their progress events, keeping the upstream's item id: they go back to the
upstream as they came, in later turns' input. Annotations and logprobs on the
answer text pass through too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from ..protocol.lifecycle import HOSTED_EVENTS, HOSTED_ITEM_EVENTS
from ..protocol.request import MCP_SECRETS, McpTool
from ..protocol.response import CALL_ITEMS, INCOMPLETE_REASONS, usage_of
from ..protocol.signals import (
    Annotation,
    Failure,
    Finish,
    HostedItem,
    ReasoningDelta,
    ReasoningOpaque,
    RefusalDelta,
    Signal,
    TextDelta,
    ToolCallDelta,
)
from . import faults
from .base import ModelCall
from .http import HttpProvider

# Request fields that are respgate's business, not the upstream's.
LOCAL_FIELDS = (
    "items",
    "warnings",
    "previous_response_id",
    "background",
    "store",
    "stream",
    "stream_options",
    "stop",  # the Responses API has no stop sequences
    "surface",  # the inbound surface, kept in the stored Response
    "mcp",  # the `mcp` tools' secrets, put back into the tools passed through (`upstream_tool`)
)


# Fields of an event that place it; the builder sets its own.
PLACEMENT = frozenset({"type", "item_id", "output_index", "sequence_number"})


def upstream_item(item: dict[str, Any]) -> dict[str, Any] | None:
    """An input item as the upstream gets it: our ids stripped (the upstream never
    stored them), hosted-tool items whole (their ids are the upstream's own);
    reasoning without `encrypted_content` dropped (useless unstored)."""
    if item["type"] == "reasoning" and not item.get("encrypted_content"):
        return None
    if item["type"] in HOSTED_EVENTS:
        return item
    return {k: v for k, v in item.items() if k != "id"}


def upstream_tool(tool: dict[str, Any], mcp: dict[str, McpTool]) -> dict[str, Any]:
    """A tool as the upstream gets it. An `mcp` tool reaches a provider only when the
    operator lets the upstream run it (`toolloop.passed_through`; otherwise the tool loop
    has made it functions): it goes with the `headers`/`authorization` that parsing kept
    out of the Response (`CreateRequest.mcp`)."""
    if tool.get("type") != "mcp":
        return tool
    held = mcp[tool["server_label"]]
    secrets = {name: value for name in MCP_SECRETS if (value := getattr(held, name)) is not None}
    return {**tool, **secrets}


def request_body(call: ModelCall) -> dict[str, Any]:
    body = {k: v for k, v in msgspec.to_builtins(call.request).items() if k not in LOCAL_FIELDS}
    if body.get("tools"):
        body["tools"] = [upstream_tool(tool, call.request.mcp) for tool in body["tools"]]
    body["model"] = call.model
    body["input"] = [i for i in (upstream_item(item) for item in call.items) if i is not None]
    body["instructions"] = call.instructions
    body["stream"] = True
    body["store"] = False
    # Unstored upstream reasoning survives only as its encrypted content, which respgate
    # carries sealed in its own (README "Conversation state"): always ask for it.
    include = list(body.get("include") or [])
    if "reasoning.encrypted_content" not in include:
        include.append("reasoning.encrypted_content")
    body["include"] = include
    return {k: v for k, v in body.items() if v is not None}


class ResponsesTranslator:
    """Responses stream events in, signals out. Tool calls are keyed by the
    upstream's `output_index`. Sans-IO."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._streamed: dict[int, bool] = {}  # output_index of a call -> saw argument deltas

    def feed(self, event: str, data: str) -> list[Signal]:
        ev = faults.decode(self.provider, data)
        if isinstance(ev, Failure):
            return [ev]
        kind = ev.get("type") or event
        simple = _DELTAS.get(kind)
        if simple is not None:
            return [simple(ev["delta"])] if ev.get("delta") else []
        if kind in HOSTED_ITEM_EVENTS:
            data = {k: v for k, v in ev.items() if k not in PLACEMENT}
            return [HostedItem(ev.get("output_index", 0), event=kind, data=data)]
        handler = self._handlers.get(kind)
        return handler(self, ev) if handler is not None else []

    def _text(self, ev: dict[str, Any]) -> list[Signal]:
        return [TextDelta(ev["delta"], tuple(ev.get("logprobs") or ()))] if ev.get("delta") else []

    def _annotation(self, ev: dict[str, Any]) -> list[Signal]:
        return [Annotation(ev["annotation"])] if ev.get("annotation") else []

    def _item_added(self, ev: dict[str, Any]) -> list[Signal]:
        item = ev.get("item") or {}
        if item.get("type") in HOSTED_EVENTS:
            return [HostedItem(ev.get("output_index", 0), item)]
        kind = CALL_ITEMS.get(item.get("type", ""))
        if kind is None:
            return []
        index = ev.get("output_index", 0)
        self._streamed[index] = False
        return [
            ToolCallDelta(
                index, item.get("call_id"), item.get("name"), "", kind, item.get("namespace")
            )
        ]

    def _call_delta(self, ev: dict[str, Any]) -> list[Signal]:
        index = ev.get("output_index", 0)
        if not ev.get("delta") or index not in self._streamed:
            return []
        self._streamed[index] = True
        kind = "custom" if ev["type"].startswith("response.custom") else "function"
        return [ToolCallDelta(index, arguments=ev["delta"], kind=kind)]

    def _item_done(self, ev: dict[str, Any]) -> list[Signal]:
        item, index = ev.get("item") or {}, ev.get("output_index", 0)
        if item.get("type") in HOSTED_EVENTS:
            return [HostedItem(index, item, done=True)]
        kind = CALL_ITEMS.get(item.get("type", ""))
        if kind is not None and self._streamed.get(index) is False:  # arguments arrived whole
            whole = item.get("arguments" if kind == "function" else "input") or ""
            return [ToolCallDelta(index, arguments=whole, kind=kind)] if whole else []
        if item.get("type") == "reasoning" and item.get("encrypted_content"):
            return [ReasoningOpaque(item["encrypted_content"])]
        return []

    def _completed(self, ev: dict[str, Any]) -> list[Signal]:
        return [*usage_of((ev.get("response") or {}).get("usage")), Finish("stop")]

    def _incomplete(self, ev: dict[str, Any]) -> list[Signal]:
        response = ev.get("response") or {}
        reason = (response.get("incomplete_details") or {}).get("reason", "")
        return [
            *usage_of(response.get("usage")),
            Finish(INCOMPLETE_REASONS.get(reason, "max_output_tokens")),
        ]

    def _failed(self, ev: dict[str, Any]) -> list[Signal]:
        error = (ev.get("response") or {}).get("error") or ev.get("error") or ev
        code = error.get("code") or "upstream_error"
        return [
            Failure(
                str(code),
                f"Provider {self.provider} failed: {error.get('message') or 'unknown error'}",
            )
        ]

    def end(self) -> list[Signal]:
        return [faults.truncated(self.provider, "its terminal event")]

    _handlers: ClassVar[dict[str, Any]] = {
        "response.output_text.delta": _text,
        "response.output_text.annotation.added": _annotation,
        "response.output_item.added": _item_added,
        "response.function_call_arguments.delta": _call_delta,
        "response.custom_tool_call_input.delta": _call_delta,
        "response.output_item.done": _item_done,
        "response.completed": _completed,
        "response.incomplete": _incomplete,
        "response.failed": _failed,
        "error": _failed,
    }


_DELTAS: dict[str, Any] = {
    "response.refusal.delta": RefusalDelta,
    "response.reasoning_summary_text.delta": ReasoningDelta,
    "response.reasoning_text.delta": lambda text: ReasoningDelta(text, "raw"),
}


class ResponsesProvider(HttpProvider):
    kind: ClassVar[str] = "responses"
    path: ClassVar[str] = "/responses"

    def request_body(self, call: ModelCall, warnings: list[str]) -> dict[str, Any]:
        if call.request.stop:
            warnings.append(f"{self.name}: `stop` was not sent (the Responses API has none)")
        return request_body(call)

    def translator(self, call: ModelCall) -> ResponsesTranslator:
        return ResponsesTranslator(self.name)
