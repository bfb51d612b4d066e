"""A Messages request (as Anthropic documents it) decoded strictly and translated into the
`CreateRequest` the engine serves.

Decoding is msgspec's, with the Responses request's limits and error paths: a field of the
wrong type, a missing required field or an unknown content block type is a 400 whose message
names the field (`messages[0].content[1].type`). Fields Anthropic has and respgate does not
use (`cache_control` on blocks and tools, `context_management`, `output_config`,
`service_tier`, `container`, `mcp_servers` ...) are accepted and ignored, as unknown fields
are: a client that sends them (Claude Code does) is served.

The translation, item by item (Responses items, `protocol/request.py`):
- `system` (a string or text blocks) -> `instructions` (blocks joined by a blank line);
- a message's text and image blocks -> a `message` item (`input_text`/`output_text`,
  `input_image` with a data: or http(s) URL); a `document` -> `input_file`;
- `tool_use` -> `function_call` (`input` as JSON text), `tool_result` ->
  `function_call_output` (`is_error` prefixes the output with `Error: `);
- `thinking` -> a `reasoning` item (the thinking as its summary, the signature as its
  `encrypted_content`: the sealed carrier this surface wrote, `builder.py`, so the
  provider that made the thinking gets its own state back); `redacted_thinking` -> a
  `reasoning` item whose `encrypted_content` is its `data`;
- `tools` -> function tools (`input_schema` as `parameters`); Anthropic's server tools
  (a `type` other than `custom`) are dropped with a warning;
- `tool_choice` auto/any/tool/none -> auto/required/function/none,
  `disable_parallel_tool_use` -> `parallel_tool_calls: false`;
- `max_tokens` -> `max_output_tokens`; `stop_sequences` -> `stop`; `temperature`, `top_p`
  as they are;
- `thinking` enabled with `budget_tokens` -> `reasoning.effort`, the smallest effort whose
  Anthropic budget (`providers/anthropic.py`) covers it; `adaptive` -> `output_config.effort`
  or `medium`; disabled -> none;
- `metadata.user_id` -> `user`; `output_config.format` (structured outputs, a
  `json_schema`) -> a `json_schema` text format.
Not carried (no field in the neutral request): `top_k` (a warning).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import orjson

from ...protocol.errors import invalid, quote
from ...protocol.request import (
    CreateRequest,
    ReasoningConfig,
    TextConfig,
    TextFormat,
    check_schema,
    decode_checked,
)
from ...providers.anthropic import THINKING_BUDGETS

# ---------------------------------------------------------------- content blocks


class _Block(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    cache_control: dict[str, Any] | None = None


class TextBlock(_Block, tag="text"):
    text: str
    citations: list[dict[str, Any]] | None = None


class Source(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: Literal["base64", "url", "text", "file", "content"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None


class ImageBlock(_Block, tag="image"):
    source: Source


class DocumentBlock(_Block, tag="document"):
    source: Source
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None


class ToolUseBlock(_Block, tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Block, tag="tool_result"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] = ""
    is_error: bool | None = None


class ThinkingBlock(_Block, tag="thinking"):
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(_Block, tag="redacted_thinking"):
    data: str


Block = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)


class MessageParam(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[Block]


# ---------------------------------------------------------------- the request


class Tool(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    type: str | None = None  # `custom` (or absent); anything else is a server tool
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(msgspec.Struct, kw_only=True):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class Metadata(msgspec.Struct, kw_only=True):
    user_id: str | None = None


class OutputFormat(msgspec.Struct, kw_only=True):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(msgspec.Struct, kw_only=True):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[MessageParam]
    max_tokens: int
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None


class CountTokensRequest(msgspec.Struct, kw_only=True):
    """`POST /v1/messages/count_tokens`: the request without `max_tokens`."""

    model: str
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None


_decoder = msgspec.json.Decoder(MessagesRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)


# ---------------------------------------------------------------- translation


def _system_text(system: str | list[TextBlock] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    return "\n\n".join(b.text for b in system) or None


def _url(source: Source, param: str) -> str:
    if source.type == "base64" and source.data is not None and source.media_type:
        return f"data:{source.media_type};base64,{source.data}"
    if source.type == "url" and source.url:
        return source.url
    raise invalid(
        f"Invalid '{param}': a {quote(source.type)} source is not supported here "
        "(send base64 `data` with its `media_type`, or a `url`).",
        param,
    )


def _part(block: TextBlock | ImageBlock | DocumentBlock, role: str, param: str) -> dict:
    if isinstance(block, TextBlock):
        return {"type": "output_text" if role == "assistant" else "input_text", "text": block.text}
    if isinstance(block, ImageBlock):
        return {"type": "input_image", "image_url": _url(block.source, f"{param}.source")}
    if block.source.type == "text" and block.source.data is not None:
        return {"type": "input_text", "text": block.source.data}
    url = _url(block.source, f"{param}.source")
    key = "file_data" if url.startswith("data:") else "file_url"
    return {"type": "input_file", key: url, "filename": block.title or "document"}


def _tool_output(block: ToolResultBlock, param: str) -> str | list[dict[str, Any]]:
    prefix = "Error: " if block.is_error else ""
    if isinstance(block.content, str):
        return prefix + block.content
    parts = [_part(b, "user", f"{param}.content[{i}]") for i, b in enumerate(block.content)]
    if all(p["type"] == "input_text" for p in parts):
        return prefix + "\n".join(p["text"] for p in parts)
    return ([{"type": "input_text", "text": prefix}] if prefix else []) + parts


def _block_item(block: Block, param: str) -> dict[str, Any]:
    """The item of a block that is not message content."""
    if isinstance(block, ToolUseBlock):
        arguments = orjson.dumps(block.input).decode()
        return {"type": "function_call", "call_id": block.id, "name": block.name,
                "arguments": arguments}  # fmt: skip
    if isinstance(block, ToolResultBlock):
        return {"type": "function_call_output", "call_id": block.tool_use_id,
                "output": _tool_output(block, param)}  # fmt: skip
    if isinstance(block, ThinkingBlock):
        item: dict[str, Any] = {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": block.thinking}],
        }
        if block.signature:
            item["encrypted_content"] = block.signature
        return item
    assert isinstance(block, RedactedThinkingBlock)
    return {"type": "reasoning", "summary": [], "encrypted_content": block.data}


def _items(messages: list[MessageParam]) -> list[dict[str, Any]]:
    """The messages as Responses input items, in block order; consecutive text, image and
    document blocks of one message make one `message` item."""
    items: list[dict[str, Any]] = []
    for m, message in enumerate(messages):
        role = message.role
        if isinstance(message.content, str):
            items.append({"type": "message", "role": role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        for b, block in enumerate(message.content):
            param = f"messages[{m}].content[{b}]"
            if isinstance(block, (TextBlock, ImageBlock, DocumentBlock)):
                parts.append(_part(block, role, param))
                continue
            if parts:
                items.append({"type": "message", "role": role, "content": parts})
                parts = []
            items.append(_block_item(block, param))
        if parts:
            items.append({"type": "message", "role": role, "content": parts})
    return items


def _tools(tools: list[Tool] | None, warnings: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools or []):
        if tool.type not in (None, "custom"):
            warnings.append(f"server tool {quote(tool.name)} ({tool.type}) is not supported")
            continue
        if tool.input_schema is None:
            raise invalid(
                f"Invalid 'tools[{i}].input_schema': a custom tool needs one.",
                f"tools[{i}].input_schema",
            )
        check_schema(tool.input_schema, f"tool {quote(tool.name)}", f"tools[{i}].input_schema")
        out.append(
            {"type": "function", "name": tool.name, "description": tool.description,
             "parameters": tool.input_schema, "strict": None}
        )  # fmt: skip
    return out


def _tool_choice(choice: ToolChoice | None, tools: list[dict[str, Any]]) -> str | dict | None:
    if choice is None:
        return None
    if choice.type == "tool":
        if choice.name not in {t["name"] for t in tools}:
            raise invalid(
                f"Invalid 'tool_choice.name': {quote(choice.name)} is not among the request's "
                "tools.",
                "tool_choice.name",
            )
        return {"type": "function", "name": choice.name}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def _effort(req: MessagesRequest) -> str | None:
    """The reasoning effort a `thinking` setting asks for (None: no reasoning)."""
    thinking = req.thinking
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "adaptive":
        asked = req.output_config.effort if req.output_config else None
        return {"max": "xhigh"}.get(asked or "medium", asked or "medium")
    budget = thinking.budget_tokens
    if budget is None:
        raise invalid(
            "Invalid 'thinking.budget_tokens': enabled thinking needs a budget.",
            "thinking.budget_tokens",
        )
    if not 1024 <= budget < req.max_tokens:
        raise invalid(
            "Invalid 'thinking.budget_tokens': it must be at least 1024 and less than "
            f"`max_tokens` ({req.max_tokens}).",
            "thinking.budget_tokens",
        )
    covering = [e for e, b in THINKING_BUDGETS.items() if b >= budget]
    return covering[0] if covering else "xhigh"


def _text(config: OutputConfig | None) -> TextConfig | None:
    """`output_config.format` (structured outputs) as a `json_schema` text format."""
    fmt = config.format if config else None
    if fmt is None:
        return None
    check_schema(fmt.schema, "output_config.format", "output_config.format.schema")
    return TextConfig(format=TextFormat(type="json_schema", name="output", schema=fmt.schema))


def _check_ranges(req: MessagesRequest) -> None:
    if req.max_tokens < 1:
        raise invalid("Invalid 'max_tokens': it must be at least 1.", "max_tokens")
    for name, hi in (("temperature", 1), ("top_p", 1)):
        value = getattr(req, name)
        if value is not None and not 0 <= value <= hi:
            raise invalid(f"Invalid '{name}': it must be between 0 and {hi}.", name)
    if not req.messages:
        raise invalid("Invalid 'messages': at least one message is needed.", "messages")


def parse_messages_request(body: bytes) -> CreateRequest:
    """Decode and validate a `POST /v1/messages` body into the engine's request
    (`ApiError(400)` naming the field otherwise). Never stored."""
    req: MessagesRequest = decode_checked(_decoder, body)
    _check_ranges(req)
    warnings: list[str] = []
    tools = _tools(req.tools, warnings)
    if req.top_k is not None:
        warnings.append("`top_k` is not supported and was ignored")
    effort = _effort(req)
    items = _items(req.messages)
    choice = req.tool_choice
    out = CreateRequest(
        model=req.model,
        input=items,
        instructions=_system_text(req.system),
        tools=tools,
        tool_choice=_tool_choice(choice, tools),
        text=_text(req.output_config),
        parallel_tool_calls=False if choice and choice.disable_parallel_tool_use else None,
        reasoning=None if effort is None else ReasoningConfig(effort=effort, summary="auto"),  # type: ignore[arg-type]
        max_output_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        user=req.metadata.user_id if req.metadata else None,
        stop=req.stop_sequences or None,
        store=False,
        stream=req.stream,
    )
    out.items = items
    out.warnings = warnings
    return out


def parse_count_tokens_request(body: bytes) -> CountTokensRequest:
    """Decode a `POST /v1/messages/count_tokens` body (400 naming the field otherwise)."""
    req: CountTokensRequest = decode_checked(_count_decoder, body)
    _tools(req.tools, [])
    _items(req.messages)  # every block's source checked
    return req


def count_tokens(req: CountTokensRequest) -> int:
    """An estimate of the input tokens: the UTF-8 bytes of the system text, the messages'
    content and the tools (as JSON) divided by 4, the usual bytes-per-token of BPE
    tokenizers on English and code, plus a few tokens of framing per message and tool.
    Images count as their URL's bytes (a data: URL overestimates)."""
    text = _system_text(req.system) or ""
    size = len(text.encode())
    for message in req.messages:
        size += len(orjson.dumps(msgspec.to_builtins(message.content))) + 16
    for tool in req.tools or []:
        size += len(orjson.dumps(msgspec.to_builtins(tool))) + 16
    return max(1, size // 4)
