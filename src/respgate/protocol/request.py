"""The create-request shape: decoding, validation and normalisation.

`parse_create_request(body)` turns raw JSON bytes into a `CreateRequest` whose
`input` is a list of normalised item dicts (every item has its `type`), or
raises `ApiError(400)` whose `param` names the offending field the way OpenAI
does (`input[2].content`). Unknown top-level fields are ignored; unknown
non-function tool types and OpenAI item types we do not model are kept as they
are and reported in `warnings`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from .errors import ApiError, invalid

# ---------------------------------------------------------------- content parts


class _Part(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass


class InputText(_Part, tag="input_text"):
    text: str


class InputImage(_Part, tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(_Part, tag="input_file"):
    filename: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    file_id: str | None = None


class InputVideo(_Part, tag="input_video"):
    video_url: str


class OutputText(_Part, tag="output_text"):
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class Refusal(_Part, tag="refusal"):
    refusal: str


class SummaryText(_Part, tag="summary_text"):
    text: str


class ReasoningText(_Part, tag="reasoning_text"):
    text: str


class Text(_Part, tag="text"):
    text: str


Part = (
    InputText
    | InputImage
    | InputFile
    | InputVideo
    | OutputText
    | Refusal
    | SummaryText
    | ReasoningText
    | Text
)

# ---------------------------------------------------------------- input items


class _Item(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str | None = None


class Message(_Item):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]
    status: str | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class FunctionCall(_Item):
    call_id: str
    name: str
    arguments: str
    status: str | None = None
    namespace: str | None = None


class FunctionCallOutput(_Item):
    call_id: str
    output: str | list[Part]
    status: str | None = None


class Reasoning(_Item):
    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class ItemReference(msgspec.Struct, kw_only=True):
    id: str


class Compaction(_Item):
    encrypted_content: str


ITEM_TYPES: dict[str, type[msgspec.Struct]] = {
    "message": Message,
    "function_call": FunctionCall,
    "function_call_output": FunctionCallOutput,
    "reasoning": Reasoning,
    "item_reference": ItemReference,
    "compaction": Compaction,
}

# OpenAI item types that real clients send back in their history (Codex CLI,
# Agents SDK) and that respgate passes through untouched for providers to
# translate or drop.
PASSTHROUGH_ITEM_TYPES = frozenset(
    {
        "custom_tool_call",
        "custom_tool_call_output",
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "image_generation_call",
        "code_interpreter_call",
        "tool_search_call",
        "tool_search_output",
    }
)

# ---------------------------------------------------------------- tools


class FunctionTool(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    format: TextFormat = msgspec.field(default_factory=TextFormat)
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(msgspec.Struct, kw_only=True):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


# ---------------------------------------------------------------- the request


class CreateRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    top_logprobs: int | None = None
    truncation: Literal["auto", "disabled"] | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    user: str | None = None
    # Filled in by parse_create_request; not read from the body.
    items: list[dict[str, Any]] = []
    warnings: list[str] = []


_decoder = msgspec.json.Decoder(CreateRequest)


_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def _param_of(err: msgspec.ValidationError, prefix: str = "") -> tuple[str, str | None]:
    """Split msgspec's "Expected ... - at `$.a[0].b`" into a message and a `param`."""
    message, sep, path = str(err).rpartition(" - at `")
    if not sep:
        message, path = path, ""
    path = path.rstrip("`").removeprefix("$")
    missing = _MISSING.match(message)
    if missing:
        path += f".{missing.group(1)}"
    param = (prefix + path).lstrip(".") or None
    return (f"Invalid '{param}': {message}" if param else message), param


def decode_json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}", code="invalid_json") from None


def parse_create_request(body: bytes) -> CreateRequest:
    """Decode and validate a `POST /v1/responses` body."""
    try:
        req = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, param = _param_of(exc)
        raise invalid(message, param) from None
    except msgspec.DecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    _validate(req)
    return req


def normalize_input(value: str | list[dict[str, Any]] | None, param: str = "input") -> list[dict]:
    """Turn `input` into a list of item dicts, each with its `type`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [normalize_item(raw, f"{param}[{i}]") for i, raw in enumerate(value)]


def normalize_item(raw: dict[str, Any], param: str) -> dict[str, Any]:
    item_type = raw.get("type")
    if item_type is None:
        # The OpenAI Agents SDK (and EasyInputMessage) send messages without `type`.
        if "role" in raw:
            item_type = "message"
        else:
            raise invalid(
                "Every input item needs a `type` (or a `role` for a message).", f"{param}.type"
            )
    if not isinstance(item_type, str):
        raise invalid("Item `type` must be a string.", f"{param}.type")
    if item_type in PASSTHROUGH_ITEM_TYPES:
        return raw
    shape = ITEM_TYPES.get(item_type)
    if shape is None:
        raise invalid(f"Unsupported input item type {item_type!r}.", f"{param}.type")
    try:
        item = msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        message, p = _param_of(exc, param)
        raise invalid(message, p) from None
    out = msgspec.to_builtins(item)
    out["type"] = item_type
    return out


def _check_range(value: float | None, lo: float, hi: float, param: str) -> None:
    if value is not None and not lo <= value <= hi:
        raise invalid(f"`{param}` must be between {lo} and {hi}, got {value}.", param)


def _validate(req: CreateRequest) -> None:
    if not req.model:
        raise invalid(
            "Missing required parameter: 'model'.", "model", code="missing_required_parameter"
        )
    if req.input is None and req.previous_response_id is None:
        raise invalid(
            "Missing required parameter: 'input'.", "input", code="missing_required_parameter"
        )
    req.items = normalize_input(req.input)
    _check_range(req.temperature, 0, 2, "temperature")
    _check_range(req.top_p, 0, 1, "top_p")
    _check_range(req.presence_penalty, -2, 2, "presence_penalty")
    _check_range(req.frequency_penalty, -2, 2, "frequency_penalty")
    _check_range(req.top_logprobs, 0, 20, "top_logprobs")
    if req.max_output_tokens is not None and req.max_output_tokens < 1:
        raise invalid("`max_output_tokens` must be at least 1.", "max_output_tokens")
    if req.max_tool_calls is not None and req.max_tool_calls < 1:
        raise invalid("`max_tool_calls` must be at least 1.", "max_tool_calls")
    if req.metadata is not None:
        if len(req.metadata) > 16:
            raise invalid("`metadata` may hold at most 16 pairs.", "metadata")
        for key, value in req.metadata.items():
            if len(key) > 64 or len(value) > 512:
                raise invalid(
                    "`metadata` keys are at most 64 and values at most 512 characters.",
                    f"metadata.{key}",
                )
    if req.background and req.store is False:
        raise invalid("Background responses need `store: true`.", "background")
    req.tools = [_normalize_tool(tool, i, req.warnings) for i, tool in enumerate(req.tools or [])]
    _validate_tool_choice(req)
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_schema" and (not fmt.name or fmt.schema is None):
        raise invalid("A `json_schema` text format needs `name` and `schema`.", "text.format")


# Non-function tool types that name what the model calls (hosted tools such as
# `web_search` have no name).
NAMED_TOOL_TYPES = frozenset({"custom", "namespace"})


def _normalize_tool(
    tool: dict[str, Any], index: int, warnings: list[str], where: str = "tools"
) -> dict[str, Any]:
    param = f"{where}[{index}]"
    tool_type = tool.get("type")
    if tool_type is None and "name" in tool:
        tool_type = "function"
    if not isinstance(tool_type, str):
        raise invalid("Every tool needs a `type`.", f"{param}.type")
    if tool_type in NAMED_TOOL_TYPES and not (isinstance(tool.get("name"), str) and tool["name"]):
        raise invalid(f"A `{tool_type}` tool needs a `name`.", f"{param}.name")
    if tool_type == "namespace":
        inner = tool.get("tools")
        if not isinstance(inner, list) or not all(isinstance(t, dict) for t in inner):
            raise invalid("A `namespace` tool needs a list of `tools`.", f"{param}.tools")
        return {
            **tool,
            "tools": [
                _normalize_tool(t, i, warnings, f"{param}.tools") for i, t in enumerate(inner)
            ],
        }
    if tool_type != "function":
        return tool
    try:
        fn = msgspec.convert(tool, FunctionTool)
    except msgspec.ValidationError as exc:
        message, p = _param_of(exc, param)
        raise invalid(message, p) from None
    if not fn.name:
        raise invalid("A function tool needs a `name`.", f"{param}.name")
    return {
        "type": "function",
        "name": fn.name,
        "description": fn.description,
        "parameters": fn.parameters,
        "strict": fn.strict,
    }


def _validate_tool_choice(req: CreateRequest) -> None:
    choice = req.tool_choice
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise invalid(f"Invalid `tool_choice` {choice!r}.", "tool_choice")
        return
    kind = choice.get("type")
    names = {t.get("name") for t in req.tools or [] if t.get("type") == "function"}
    if kind == "function":
        name = choice.get("name")
        if name not in names:
            raise invalid(
                f"Tool choice {name!r} is not among the request's function tools.",
                "tool_choice.name",
            )
    elif kind == "allowed_tools":
        if choice.get("mode", "auto") not in ("auto", "required"):
            raise invalid("`tool_choice.mode` must be 'auto' or 'required'.", "tool_choice.mode")
        if not isinstance(choice.get("tools"), list):
            raise invalid("`tool_choice.tools` must be a list.", "tool_choice.tools")
    elif not isinstance(kind, str):
        raise invalid("`tool_choice` needs a `type`.", "tool_choice.type")


def tool_choice_wire(req: CreateRequest) -> str | dict[str, Any]:
    return req.tool_choice if req.tool_choice is not None else "auto"


def with_error_param(err: ApiError, param: str) -> ApiError:
    err.param = param
    return err
