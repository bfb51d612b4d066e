"""The create-request shape: decoding, validation and normalisation.

`parse_create_request(body)` turns raw JSON bytes into a `CreateRequest` whose
`input` is a list of normalised item dicts (every item has its `type`), or
raises `ApiError(400)` whose `param` names the offending field the way OpenAI
does (`input[2].content`). Unknown top-level fields are ignored; unknown
non-function tool types and OpenAI item types we do not model are kept as they
are and reported in `warnings`.

No value that a later layer could not carry gets past this module: arrays and
objects nest at most `MAX_DEPTH` levels, every integer fits in 64 bits (what
orjson encodes and the stores keep), every other number in a double, and a
function tool's `parameters` and a `json_schema` format's `schema` have the
structure of a JSON Schema (`schema_problem`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import msgspec
import orjson

from .errors import ApiError, invalid, quote, shorten

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
    output: str | list[Part]
    call_id: str | None = None
    status: str | None = None
    # An output of no call, named instead: Codex sends its `goals` context so
    # (`{"name": "goal_objective", "namespace": "agent", "output": ...}`, no `call_id`).
    name: str | None = None
    namespace: str | None = None

    def __post_init__(self) -> None:
        if self.call_id is None and self.name is None:
            raise ValueError("Object missing required field `call_id`")


class Reasoning(_Item):
    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class ItemReference(msgspec.Struct, kw_only=True):
    id: str


class Compaction(_Item):
    encrypted_content: str


class ContextCompaction(_Item):
    """Codex's newer name for a compaction item (its content may be absent)."""

    encrypted_content: str | None = None


class CompactionTrigger(_Item):
    """Codex's remote compaction (v2): this turn answers with one `compaction` item."""


ITEM_TYPES: dict[str, type[msgspec.Struct]] = {
    "message": Message,
    "function_call": FunctionCall,
    "function_call_output": FunctionCallOutput,
    "reasoning": Reasoning,
    "item_reference": ItemReference,
    "compaction": Compaction,
    "compaction_summary": Compaction,  # Codex's alias
    "context_compaction": ContextCompaction,
    "compaction_trigger": CompactionTrigger,
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


class McpToolNames(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A filter of an MCP server's tools (`allowed_tools`, `require_approval.always|never`)."""

    tool_names: list[str] | None = None
    read_only: bool | None = None


class McpApproval(msgspec.Struct, kw_only=True, omit_defaults=True):
    always: McpToolNames | None = None
    never: McpToolNames | None = None


class McpTool(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A remote MCP server whose tools the gateway runs (`{"type": "mcp", ...}`)."""

    server_label: str
    server_url: str | None = None
    connector_id: str | None = None
    tunnel_id: str | None = None
    headers: dict[str, str] | None = None
    authorization: str | None = None
    allowed_tools: list[str] | McpToolNames | None = None
    require_approval: Literal["always", "never"] | McpApproval | None = None
    server_description: str | None = None


# A server label names the model's function namespace: a function name's characters.
MCP_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Fields of an `mcp` tool sent to its server only: never echoed in the Response or stored.
MCP_SECRETS = ("headers", "authorization")


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


class ConversationParam(msgspec.Struct, kw_only=True):
    """`conversation` as an object: `{"id": "conv_..."}`."""

    id: str


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
    metadata: dict[str, Any] | None = None  # string values: `check_metadata`, naming the key
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    user: str | None = None
    conversation: str | ConversationParam | None = None
    # `false`: a prewarm (Codex) that records the context and calls no model.
    generate: bool | None = None
    # Filled in by parse_create_request; not read from the body.
    items: list[dict[str, Any]] = []
    conversation_id: str | None = None
    warnings: list[str] = []
    # Stop sequences: set by another surface (Chat Completions `stop`, Messages
    # `stop_sequences`), never by a Responses body.
    stop: list[str] | None = None
    # The inbound surface that made the request when not `/v1/responses` ("chat.completions"):
    # kept in the Response's `surface` field, never read from a Responses body.
    surface: str | None = None
    # The `mcp` tools by server label; their `headers`/`authorization` are kept only here.
    mcp: dict[str, McpTool] = {}


_decoder = msgspec.json.Decoder(CreateRequest)

# Values respgate keeps from a body (README "Errors"): arrays and objects nest at most
# MAX_DEPTH levels (the body itself is level 1; orjson stops at 255, and the stored and
# streamed forms wrap a request's values a few levels deeper), and integers fit in 64 bits.
MAX_DEPTH = 128
INT_MIN, INT_MAX = -(2**63), 2**64 - 1

Path = list[str | int]


class _Rejected(Exception):
    """A value `_check_values` refuses; `path` is filled in while unwinding (innermost first)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: Path = []


def _fits(container: Any, depth: int) -> bool:
    """True when nothing in `container` (a dict or list at level `depth`) nests deeper than
    MAX_DEPTH and every integer in it fits in 64 bits. The fast path: no path kept."""
    for item in container.values() if type(container) is dict else container:
        kind = type(item)
        if kind is dict or kind is list:
            if depth >= MAX_DEPTH or not _fits(item, depth + 1):
                return False
        elif kind is int and not INT_MIN <= item <= INT_MAX:
            return False
    return True


def _check_values(value: Any, depth: int) -> None:
    """Raise `_Rejected` for a container nested deeper than MAX_DEPTH or an integer outside
    64 bits anywhere in `value` (a container at level `depth`, or a leaf); slower than
    `_fits`, for finding where."""
    kind = type(value)
    if kind is dict:
        if depth > MAX_DEPTH:
            raise _Rejected("depth")
        for key, item in value.items():
            try:
                _check_values(item, depth + 1)
            except _Rejected as bad:
                bad.path.append(key)
                raise
    elif kind is list:
        if depth > MAX_DEPTH:
            raise _Rejected("depth")
        for index, item in enumerate(value):
            try:
                _check_values(item, depth + 1)
            except _Rejected as bad:
                bad.path.append(index)
                raise
    elif kind is int and not INT_MIN <= value <= INT_MAX:
        raise _Rejected("number")


def path_param(path: Path, prefix: str = "") -> str | None:
    """`["input", 2, "content"]` as OpenAI writes a `param`: `input[2].content`."""
    out = prefix
    for segment in path:
        out += f"[{segment}]" if isinstance(segment, int) else f".{shorten(segment)}"
    return out.lstrip(".") or None


_LIMIT_PROBLEMS = {
    "depth": f"nested too deeply (arrays and objects nest at most {MAX_DEPTH} levels)",
    "number": "number out of range (an integer must fit in 64 bits, from -2^63 to 2^64-1; "
    "any other number in a double)",
}


def _rejection(problem: str, path: Path, prefix: str = "") -> ApiError:
    param = path_param(path, prefix)
    where = f"Invalid '{param}'" if param else "Invalid request body"
    return invalid(f"{where}: {_LIMIT_PROBLEMS[problem]}.", param)


def _check(value: Any) -> None:
    """`ApiError(400)` naming the place of the first value beyond the limits in `value`
    (a decoded JSON document)."""
    if type(value) in (dict, list) and _fits(value, 1):
        return
    try:
        _check_values(value, 1)
    except _Rejected as bad:
        raise _rejection(bad.problem, bad.path[::-1]) from None


def _check_request(req: CreateRequest) -> None:
    fields = {name: getattr(req, name) for name in req.__struct_fields__}
    for name in ("text", "reasoning"):  # the nested Structs
        if fields[name] is not None:
            fields[name] = msgspec.to_builtins(fields[name])
    _check(fields)


# JSON tokens, enough to follow the path through a body already known to be valid JSON.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]|-?[0-9][-+.0-9eE]*')


def _number_out_of_range(token: bytes) -> bool:
    if token.lstrip(b"-").isdigit():
        return len(token) > 21 or not INT_MIN <= int(token) <= INT_MAX
    return math.isinf(float(token))


def _locate(body: bytes, problem: str) -> Path:
    """Where in `body` the first container nested deeper than MAX_DEPTH (`depth`) or the
    first out-of-range number (`number`) is. Only for bodies the parser refused, so a slow
    pure-Python scan is fine."""
    path: Path = []  # one slot per open container: its current key or index
    objects: list[bool] = []
    expect_key = False
    for match in _TOKENS.finditer(body):
        token = match.group()
        first = token[:1]
        if first in (b"{", b"["):
            if problem == "depth" and len(path) >= MAX_DEPTH:
                return path
            path.append(0 if first == b"[" else "")
            objects.append(first == b"{")
            expect_key = first == b"{"
        elif first in (b"}", b"]"):
            path.pop()
            objects.pop()
        elif first == b",":
            if objects[-1]:
                expect_key = True
            else:
                path[-1] = int(path[-1]) + 1
        elif first == b'"':
            if expect_key:
                path[-1] = orjson.loads(token)
                expect_key = False
        elif problem == "number" and _number_out_of_range(token):
            return path
    return []


_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def _param_of(err: msgspec.ValidationError, prefix: str = "") -> tuple[str, str | None]:
    """Split msgspec's "Expected ... - at `$.a[0].b`" into a message and a `param`."""
    message, sep, path = str(err).rpartition(" - at `")
    if not sep:
        message, path = path, ""
    # msgspec quotes the offending value in some messages ("Invalid enum value '...'").
    message = re.sub(r"'(.*)'", lambda m: quote(m[1]), message, count=1, flags=re.S)
    path = path.rstrip("`").removeprefix("$")
    missing = _MISSING.match(message)
    if missing:
        path += f".{missing.group(1)}"
    # A mapping's value is at `[...]` (msgspec does not name the key): the mapping is the param.
    path, in_value, _ = path.partition("[...]")
    param = (prefix + path).lstrip(".") or None
    if param is None:
        return message, None
    return f"Invalid {'a value of ' if in_value else ''}'{param}': {message}", param


def _decode(decoder: msgspec.json.Decoder, body: bytes) -> Any:
    """`decoder.decode(body)` with every failure as a 400: a number out of range or a body
    too deep to parse names the place (`param`), whatever field it is in."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if str(exc).startswith(("Number out of range", "Integer value out of range")):
            raise _rejection("number", _locate(body, "number")) from None
        message, param = _param_of(exc)
        raise invalid(message, param) from None
    except msgspec.DecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise _rejection("depth", _locate(body, "depth")) from None


_any_decoder = msgspec.json.Decoder()


# What JSON Schema makes of each keyword's value (the keywords respgate checks): a schema,
# an object of schemas, an array of schemas, or a value of a given JSON type.
_KEYWORDS: dict[str, str] = {
    **dict.fromkeys(
        ("items", "additionalItems", "additionalProperties", "not", "contains", "propertyNames",
         "if", "then", "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema"),
        "schema",
    ),
    **dict.fromkeys(
        ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"),
        "schemas",
    ),
    **dict.fromkeys(("anyOf", "oneOf", "allOf", "prefixItems"), "schema list"),
    **dict.fromkeys(
        ("minimum", "maximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems",
         "minProperties", "maxProperties", "minContains", "maxContains"),
        "number",
    ),
    "exclusiveMinimum": "number or boolean",  # booleans in draft 4
    "exclusiveMaximum": "number or boolean",
    "type": "type",
    "enum": "array",
    "required": "names",
}  # fmt: skip
_KEYWORD_PROBLEMS = {
    "schemas": "must be an object of JSON Schemas",
    "schema list": "must be an array of JSON Schemas",
    "number": "must be a number",
    "number or boolean": "must be a number",
    "type": "must be a string or an array of strings",
    "array": "must be an array",
    "names": "must be an array of strings",
}


def _strings(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _keyword_ok(kind: str, value: Any) -> bool:
    """Whether `value` has the JSON type keyword `kind` needs (subschemas checked apart)."""
    if kind == "schemas":
        return type(value) is dict
    if kind == "schema list":
        return type(value) is list
    if kind == "number":
        return type(value) in (int, float)
    if kind == "number or boolean":
        return type(value) in (int, float, bool)
    if kind == "type":
        return type(value) is str or _strings(value)
    if kind == "array":
        return type(value) is list
    if kind == "names":
        return _strings(value)
    return True


def schema_problem(schema: Any) -> tuple[Path, str] | None:
    """Where `schema` lacks the structure of a JSON Schema, and what is wrong there (None:
    nothing). Checked: a subschema is an object or a boolean, wherever one belongs; `type`,
    `enum`, `required` and the numeric keywords have the types JSON Schema gives them.
    Not a full meta-schema validation: whether the upstream accepts the schema is its call."""
    kind = type(schema)
    if kind is bool:
        return None
    if kind is not dict:
        return [], "must be a JSON Schema (an object or a boolean)"
    for key, value in schema.items():
        keyword = _KEYWORDS.get(key)
        if keyword is None:
            continue
        if not _keyword_ok(keyword, value):
            return [key], _KEYWORD_PROBLEMS[keyword]
        if keyword == "schema":
            # `items` as an array: the tuple form of drafts 4 to 2019-09
            tuple_form = key == "items" and type(value) is list
            children = enumerate(value) if tuple_form else ((None, value),)
        elif keyword == "schemas":
            children = value.items()
        elif keyword == "schema list":
            children = enumerate(value)
        else:
            continue
        for name, child in children:
            found = schema_problem(child)
            if found is not None:
                here: Path = [key] if name is None else [key, name]
                return [*here, *found[0]], found[1]
    return None


def check_schema(schema: Any, owner: str, param: str) -> None:
    found = schema_problem(schema)
    if found is not None:
        path, problem = found
        where = path_param(path) or "the schema"
        raise invalid(f"Invalid schema for {owner}: `{where}` {problem}.", path_param(path, param))


def decode_checked(decoder: msgspec.json.Decoder, body: bytes) -> Any:
    """`body` decoded by `decoder` (another surface's request shape) with every failure a 400
    naming the place, and every value within the limits a request body has."""
    value = _decode(decoder, body)
    _check(msgspec.to_builtins(value))
    return value


def decode_json(body: bytes) -> Any:
    """Any JSON document, with the same limits as a request body."""
    value = _decode(_any_decoder, body)
    _check(value)
    return value


def parse_create_request(body: bytes) -> CreateRequest:
    """Decode and validate a `POST /v1/responses` body."""
    req = _decode(_decoder, body)
    _check_request(req)
    _validate(req)
    return req


class CompactRequest(msgspec.Struct, kw_only=True):
    """A `POST /v1/responses/compact` body."""

    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    previous_response_id: str | None = None
    instructions: str | None = None
    prompt_cache_key: str | None = None

    def as_create_request(self) -> CreateRequest:
        """The request whose context is compacted (never stored)."""
        req = CreateRequest(
            model=self.model,
            input=self.input,
            previous_response_id=self.previous_response_id,
            instructions=self.instructions,
            prompt_cache_key=self.prompt_cache_key,
            store=False,
        )
        req.items = normalize_input(self.input)
        return req


_compact_decoder = msgspec.json.Decoder(CompactRequest)


def parse_compact_request(body: bytes) -> CompactRequest:
    """Decode and validate a `POST /v1/responses/compact` body."""
    req = _decode(_compact_decoder, body)
    _check(msgspec.to_builtins(req))
    if not req.model:
        raise invalid(
            "Missing required parameter: 'model'.", "model", code="missing_required_parameter"
        )
    if req.input is None and req.previous_response_id is None:
        raise invalid(
            "Missing required parameter: 'input'.", "input", code="missing_required_parameter"
        )
    normalize_input(req.input)  # a 400 naming the item now, not later
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
        raise invalid(f"Unsupported input item type {quote(item_type)}.", f"{param}.type")
    try:
        item = msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        message, p = _param_of(exc, param)
        raise invalid(message, p) from None
    out = msgspec.to_builtins(item)
    out["type"] = item_type
    return out


def check_metadata(metadata: dict[str, Any] | None) -> None:
    """OpenAI's metadata rules: string values, at most 16 pairs, keys up to 64 and values
    up to 512 characters (400 naming the offending key)."""
    if metadata is None:
        return
    if len(metadata) > 16:
        raise invalid("`metadata` may hold at most 16 pairs.", "metadata")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise invalid("`metadata` values must be strings.", path_param([key], "metadata"))
        if len(key) > 64 or len(value) > 512:
            raise invalid(
                "`metadata` keys are at most 64 and values at most 512 characters.",
                path_param([key], "metadata"),
            )


def _check_range(value: float | None, lo: float, hi: float, param: str) -> None:
    if value is not None and not lo <= value <= hi:
        raise invalid(f"`{param}` must be between {lo} and {hi}, got {value}.", param)


def check_sampling(req: Any) -> None:
    """The ranges of a request's sampling fields (`temperature`, `top_p`, the penalties,
    `top_logprobs`: the same names on every surface); a 400 naming the one outside."""
    _check_range(req.temperature, 0, 2, "temperature")
    _check_range(req.top_p, 0, 1, "top_p")
    _check_range(req.presence_penalty, -2, 2, "presence_penalty")
    _check_range(req.frequency_penalty, -2, 2, "frequency_penalty")
    _check_range(req.top_logprobs, 0, 20, "top_logprobs")


def _validate(req: CreateRequest) -> None:
    req.warnings = []  # derived, never the body's
    req.stop = None
    req.surface = None
    if not req.model:
        raise invalid(
            "Missing required parameter: 'model'.", "model", code="missing_required_parameter"
        )
    _validate_conversation(req)
    if req.input is None and req.previous_response_id is None and req.conversation_id is None:
        raise invalid(
            "Missing required parameter: 'input'.", "input", code="missing_required_parameter"
        )
    req.items = normalize_input(req.input)
    check_sampling(req)
    if req.max_output_tokens is not None and req.max_output_tokens < 1:
        raise invalid("`max_output_tokens` must be at least 1.", "max_output_tokens")
    if req.max_tool_calls is not None and req.max_tool_calls < 1:
        raise invalid("`max_tool_calls` must be at least 1.", "max_tool_calls")
    check_metadata(req.metadata)
    if req.background and req.store is False:
        raise invalid("Background responses need `store: true`.", "background")
    req.tools = [_normalize_tool(tool, i, req.warnings) for i, tool in enumerate(req.tools or [])]
    req.mcp = _mcp_tools(req.tools)
    _validate_tool_choice(req)
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_schema":
        if not fmt.name or fmt.schema is None:
            raise invalid("A `json_schema` text format needs `name` and `schema`.", "text.format")
        check_schema(fmt.schema, f"text format {quote(fmt.name)}", "text.format.schema")


def _validate_conversation(req: CreateRequest) -> None:
    """`conversation` (an id or `{"id": ...}`) as `req.conversation_id`; it and
    `previous_response_id` exclude each other."""
    conversation = req.conversation
    req.conversation_id = None
    if conversation is None:
        return
    param = "conversation" if isinstance(conversation, str) else "conversation.id"
    conversation_id = conversation if isinstance(conversation, str) else conversation.id
    if not conversation_id:
        raise invalid("`conversation` must name a conversation id.", param)
    if req.previous_response_id is not None:
        raise invalid(
            "Mutually exclusive parameters: send either `previous_response_id` or "
            "`conversation`, not both.",
            "conversation",
            code="mutually_exclusive_parameters",
        )
    req.conversation_id = conversation_id


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
    if fn.parameters is not None:
        check_schema(fn.parameters, f"function {quote(fn.name)}", f"{param}.parameters")
    return {
        "type": "function",
        "name": fn.name,
        "description": fn.description,
        "parameters": fn.parameters,
        "strict": fn.strict,
    }


def _mcp_tools(tools: list[dict[str, Any]]) -> dict[str, McpTool]:
    """The request's `mcp` tools by label (400 naming the field for a bad one), each
    removed of its secrets in `tools` (the Response echoes `tools`)."""
    found: dict[str, McpTool] = {}
    for i, tool in enumerate(tools):
        if tool.get("type") != "mcp":
            continue
        param = f"tools[{i}]"
        try:
            mcp = msgspec.convert({k: v for k, v in tool.items() if k != "type"}, McpTool)
        except msgspec.ValidationError as exc:
            message, p = _param_of(exc, param)
            raise invalid(message, p) from None
        if not MCP_LABEL.fullmatch(mcp.server_label):
            raise invalid(
                "`server_label` must be 1 to 64 letters, digits, `_` or `-`.",
                f"{param}.server_label",
            )
        if mcp.server_label in found:
            raise invalid(
                f"Two `mcp` tools have the server label {quote(mcp.server_label)}.",
                f"{param}.server_label",
            )
        found[mcp.server_label] = mcp
        tools[i] = {k: v for k, v in tool.items() if k not in MCP_SECRETS}
    return found


def _validate_tool_choice(req: CreateRequest) -> None:
    choice = req.tool_choice
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise invalid(f"Invalid `tool_choice` {quote(choice)}.", "tool_choice")
        return
    kind = choice.get("type")
    names = {t.get("name") for t in req.tools or [] if t.get("type") == "function"}
    if kind == "function":
        name = choice.get("name")
        if name not in names:
            raise invalid(
                f"Tool choice {quote(name)} is not among the request's function tools.",
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
