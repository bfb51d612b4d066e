"""Responses tools for upstreams that only take plain functions (Chat
Completions, Anthropic): the rules both dialects share, in both directions.

- `function`: passed as is.
- `namespace`: each inner tool becomes its own function named
  `<namespace>__<name>`; a call to it comes back as a `function_call` (or
  `custom_tool_call`) with `name` and `namespace` split again.
- `custom` (free-form input): a function with one string parameter `input`
  (its grammar, if any, is appended to the description); a call comes back as
  a `custom_tool_call` whose `input` is that string. Its arguments are
  buffered and decoded when the call ends, so `custom_tool_call_input.delta`
  carries the whole input at once.
- anything else (`web_search`, `file_search`, `image_generation`,
  `tool_search`, `mcp`, `code_interpreter`, `local_shell`, ...): hosted tools
  the upstream cannot run; dropped, with a warning for the response header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..protocol.errors import quote
from ..protocol.ids import new_id
from ..protocol.signals import Signal, ToolCallDelta

NAMESPACE_SEPARATOR = "__"
CUSTOM_INPUT = "input"
EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class FlatTool:
    """One function as the upstream model sees it."""

    wire_name: str
    name: str
    namespace: str | None
    kind: Literal["function", "custom"]
    description: str | None
    parameters: dict[str, Any]
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """A Responses `tool_choice`, reduced to what plain-function upstreams take.

    `mode` is `auto`, `none`, `required` or `function` (then `name` is the
    wire name to force). `allowed_tools` becomes a filter of the tool list.
    """

    mode: Literal["auto", "none", "required", "function"] = "auto"
    name: str | None = None


def wire_name(name: str, namespace: str | None) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def custom_arguments(text: str) -> str:
    """The function arguments that carry a custom tool's free-form `input`."""
    return orjson.dumps({CUSTOM_INPUT: text}).decode()


def custom_input(arguments: str) -> str:
    """A custom tool's `input` back out of its function arguments."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return value[CUSTOM_INPUT]
    return arguments


def _custom_schema(tool: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    description = tool.get("description")
    fmt = tool.get("format") or {}
    if fmt.get("type") == "grammar" and fmt.get("definition"):
        grammar = (
            f"The input must follow this {fmt.get('syntax', '')} grammar:\n{fmt['definition']}"
        )
        description = f"{description}\n\n{grammar}" if description else grammar
    schema = {
        "type": "object",
        "properties": {
            CUSTOM_INPUT: {"type": "string", "description": "The raw input for the tool."}
        },
        "required": [CUSTOM_INPUT],
        "additionalProperties": False,
    }
    return description, schema


class ToolTable:
    """The request's tools flattened to functions, and the way back."""

    def __init__(
        self, tools: list[dict[str, Any]] | None, provider: str, warnings: list[str]
    ) -> None:
        self.tools: list[FlatTool] = []
        self._by_wire: dict[str, FlatTool] = {}
        self._provider = provider
        self._warnings = warnings
        for tool in tools or []:
            self._add(tool, None)

    def _add(self, tool: dict[str, Any], namespace: str | None) -> None:
        kind = tool.get("type", "function")
        name = tool.get("name")
        if kind == "namespace" and namespace is None and isinstance(name, str):
            for inner in tool.get("tools") or []:
                self._add(inner, name)
            return
        if kind not in ("function", "custom") or not isinstance(name, str):
            self.warn(
                f"tool type {quote(kind)} is not supported by provider {self._provider} and was dropped"
            )
            return
        if kind == "custom":
            description, parameters = _custom_schema(tool)
            flat = FlatTool(
                wire_name(name, namespace), name, namespace, "custom", description, parameters
            )
        else:
            flat = FlatTool(
                wire_name(name, namespace),
                name,
                namespace,
                "function",
                tool.get("description"),
                tool.get("parameters") or EMPTY_OBJECT_SCHEMA,
                tool.get("strict"),
            )
        self.tools.append(flat)
        self._by_wire[flat.wire_name] = flat

    def warn(self, message: str) -> None:
        if message not in self._warnings:
            self._warnings.append(message)

    def lookup(self, wire: str | None) -> FlatTool | None:
        return self._by_wire.get(wire) if wire else None

    def choice(self, tool_choice: str | dict[str, Any] | None) -> ToolChoice:
        """Reduce `tool_choice`; `allowed_tools` narrows `self.tools` in place."""
        if tool_choice is None or isinstance(tool_choice, str):
            mode = tool_choice or "auto"
            return ToolChoice(mode if mode in ("none", "required") else "auto")
        kind = tool_choice.get("type")
        if kind in ("function", "custom"):
            name = tool_choice.get("name")
            matches = [t for t in self.tools if t.name == name and t.kind == kind]
            if matches:
                return ToolChoice("function", matches[0].wire_name)
        elif kind == "allowed_tools":
            allowed = {
                (t.get("type", "function"), t.get("name")) for t in tool_choice.get("tools") or []
            }
            self.tools = [
                t
                for t in self.tools
                if (t.kind, t.name) in allowed or ("namespace", t.namespace) in allowed
            ]
            return ToolChoice("required" if tool_choice.get("mode") == "required" else "auto")
        self.warn(
            f"tool_choice {quote(kind)} is not supported by provider {self._provider}; using 'auto'"
        )
        return ToolChoice()


def call_arguments(item: dict[str, Any]) -> tuple[str, str]:
    """(wire name, arguments) of a `function_call` or `custom_tool_call` history item."""
    name = wire_name(item.get("name", ""), item.get("namespace"))
    if item["type"] == "custom_tool_call":
        return name, custom_arguments(item.get("input", ""))
    return name, item.get("arguments") or "{}"


@dataclass(slots=True)
class _Buffered:
    call_id: str | None
    tool: FlatTool
    chunks: list[str] = field(default_factory=list)


class ToolCalls:
    """Upstream tool-call fragments (keyed by the upstream's index) to signals.

    Function calls stream through; custom calls are buffered and released by
    `flush()` (when the upstream's turn ends) with their `input` decoded.
    """

    def __init__(self, table: ToolTable) -> None:
        self._table = table
        self._kinds: dict[int, FlatTool | None] = {}
        self._custom: dict[int, _Buffered] = {}

    def fragment(
        self, index: int, call_id: str | None, name: str | None, arguments: str
    ) -> ToolCallDelta | None:
        if index not in self._kinds and not call_id:
            # An upstream that gives no id: one minted here, so every surface's client
            # and the stored response see the same call id.
            call_id = new_id("call")
        if index not in self._kinds or (self._kinds[index] is None and name):
            self._kinds[index] = self._table.lookup(name)
        tool = self._kinds[index]
        if tool is None:  # a name the request did not offer: pass it through as a function
            return ToolCallDelta(index, call_id or None, name or None, arguments)
        if tool.kind == "custom":
            buf = self._custom.setdefault(index, _Buffered(call_id or None, tool))
            buf.call_id = buf.call_id or call_id or None
            if arguments:
                buf.chunks.append(arguments)
            return None
        return ToolCallDelta(
            index, call_id or None, tool.name, arguments, "function", tool.namespace
        )

    def flush(self) -> list[Signal]:
        out: list[Signal] = [
            ToolCallDelta(
                i,
                b.call_id,
                b.tool.name,
                custom_input("".join(b.chunks)),
                "custom",
                b.tool.namespace,
            )
            for i, b in sorted(self._custom.items())
        ]
        self._custom.clear()
        return out
