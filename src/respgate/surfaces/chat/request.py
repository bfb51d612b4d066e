"""The Chat Completions request as OpenAI documents it, decoded strictly and translated
into the Responses `CreateRequest` the engine takes.

`parse_chat_request(body)` raises `ApiError(400)` whose `param` names the field the way
OpenAI does (`messages[2].content[0].type`). Unknown top-level fields are ignored, as on
`/v1/responses`; fields respgate cannot honour are a 400 (`n` above 1, audio) or a
warning (`seed`, `logit_bias`, `prediction`, `web_search_options`, a message's `name`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ...protocol.errors import invalid, quote
from ...protocol.items import LOGPROBS
from ...protocol.request import (
    CreateRequest,
    ReasoningConfig,
    TextConfig,
    TextFormat,
    check_metadata,
    check_sampling,
    check_schema,
    decode_checked,
    normalize_input,
)
from ...protocol.response import CALL_ITEMS
from .builder import CALL_FIELDS
from .stored import CHAT_SURFACE

# ---------------------------------------------------------------- content parts


class _Part(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class TextPart(_Part, tag="text"):
    text: str


class ImageURL(msgspec.Struct, kw_only=True):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Part, tag="image_url"):
    image_url: ImageURL


class InputAudio(msgspec.Struct, kw_only=True):
    data: str
    format: str


class AudioPart(_Part, tag="input_audio"):
    input_audio: InputAudio


class FileRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Part, tag="file"):
    file: FileRef


class RefusalPart(_Part, tag="refusal"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart
AssistantPart = TextPart | RefusalPart

# ---------------------------------------------------------------- messages


class FunctionCall(msgspec.Struct, kw_only=True):
    name: str
    arguments: str


class CustomCall(msgspec.Struct, kw_only=True):
    name: str
    input: str


class ToolCall(msgspec.Struct, kw_only=True):
    """A call of an assistant message: `function` for a function tool's, `custom` (with
    `type: "custom"`) for a custom tool's."""

    id: str
    type: Literal["function", "custom"] = "function"
    function: FunctionCall | None = None
    custom: CustomCall | None = None


class _Message(msgspec.Struct, tag_field="role", kw_only=True):
    name: str | None = None


class DeveloperMessage(_Message, tag="developer"):
    content: str | list[TextPart]


class SystemMessage(_Message, tag="system"):
    content: str | list[TextPart]


class UserMessage(_Message, tag="user"):
    content: str | list[UserPart]


class AssistantMessage(_Message, tag="assistant"):
    content: str | list[AssistantPart] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    # The reasoning of an earlier turn sent back, as vLLM and DeepSeek clients do.
    reasoning_content: str | None = None


class ToolMessage(_Message, tag="tool"):
    content: str | list[TextPart]
    tool_call_id: str


class FunctionMessage(_Message, tag="function"):
    """The deprecated `function` role: decoded so the 400 can name it."""

    content: str | None = None


Message = (
    DeveloperMessage
    | SystemMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage
)

# ---------------------------------------------------------------- tools and formats


class FunctionDef(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Grammar(msgspec.Struct, kw_only=True):
    definition: str
    syntax: Literal["lark", "regex"]


class _CustomFormat(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class CustomText(_CustomFormat, tag="text"):
    pass


class CustomGrammar(_CustomFormat, tag="grammar"):
    grammar: Grammar


class CustomDef(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    format: CustomText | CustomGrammar | None = None


class Tool(msgspec.Struct, kw_only=True):
    """A function tool (`function`) or a custom tool (`type: "custom"`, `custom`)."""

    type: Literal["function", "custom"]
    function: FunctionDef | None = None
    custom: CustomDef | None = None

    @property
    def name(self) -> str:
        named = self.function if self.type == "function" else self.custom
        return named.name if named is not None else ""


class ChosenFunction(msgspec.Struct, kw_only=True):
    name: str


class _Choice(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class FunctionChoice(_Choice, tag="function"):
    function: ChosenFunction


class CustomChoice(_Choice, tag="custom"):
    custom: ChosenFunction


class AllowedTools(msgspec.Struct, kw_only=True):
    mode: Literal["auto", "required"]
    tools: list[FunctionChoice | CustomChoice]


class AllowedToolsChoice(_Choice, tag="allowed_tools"):
    allowed_tools: AllowedTools


ToolChoice = (
    Literal["none", "auto", "required"] | FunctionChoice | CustomChoice | AllowedToolsChoice
)


class _Format(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class PlainText(_Format, tag="text"):
    pass


class JsonObject(_Format, tag="json_object"):
    pass


class JsonSchema(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class JsonSchemaFormat(_Format, tag="json_schema"):
    json_schema: JsonSchema


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


# ---------------------------------------------------------------- the request


class ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    messages: list[Message]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: PlainText | JsonObject | JsonSchemaFormat | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None  # string values: checked by `check_metadata`
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None
    # The deprecated function calling: decoded so the 400 can name it.
    functions: list[Any] | None = None
    function_call: Any = None
    # Accepted and not honoured (a warning names them).
    seed: int | None = None
    logit_bias: dict[str, int] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None

    @property
    def include_usage(self) -> bool:
        """Whether the stream ends with a usage chunk (`stream_options.include_usage`)."""
        return bool(self.stream_options and self.stream_options.include_usage)


_decoder = msgspec.json.Decoder(ChatRequest)
IGNORED = ("seed", "logit_bias", "prediction", "web_search_options")
MAX_STOP = 4


def parse_chat_request(body: bytes) -> ChatRequest:
    """Decode and validate a `POST /v1/chat/completions` body."""
    chat: ChatRequest = decode_checked(_decoder, body)
    if not chat.model:
        raise invalid(
            "Missing required parameter: 'model'.", "model", code="missing_required_parameter"
        )
    if not chat.messages:
        raise invalid("`messages` must hold at least one message.", "messages")
    if chat.n is not None and chat.n != 1:
        raise invalid(f"`n` must be 1 (one choice per request), got {chat.n}.", "n")
    if chat.audio is not None or "audio" in (chat.modalities or ()):
        param = "audio" if chat.audio is not None else "modalities"
        raise invalid("Audio output is not supported by this gateway.", param)
    for name in ("functions", "function_call"):
        if getattr(chat, name) is not None:
            raise invalid(
                f"The deprecated `{name}` is not supported; use `tools` and `tool_choice`.", name
            )
    if chat.stream_options is not None and not chat.stream:
        raise invalid("`stream_options` is only allowed when `stream` is true.", "stream_options")
    if isinstance(chat.stop, list) and len(chat.stop) > MAX_STOP:
        raise invalid(f"`stop` holds at most {MAX_STOP} sequences.", "stop")
    for name, value in (
        ("max_tokens", chat.max_tokens),
        ("max_completion_tokens", chat.max_completion_tokens),
    ):
        if value is not None and value < 1:
            raise invalid(f"`{name}` must be at least 1.", name)
    check_sampling(chat)
    if chat.top_logprobs is not None and not chat.logprobs:
        raise invalid("`top_logprobs` needs `logprobs: true`.", "top_logprobs")
    check_metadata(chat.metadata)
    for i, tool in enumerate(chat.tools or ()):
        param = f"tools[{i}].{tool.type}"
        if getattr(tool, tool.type) is None:
            raise invalid(f"A `{tool.type}` tool needs `{tool.type}`.", param)
        if not tool.name:
            raise invalid(f"A `{tool.type}` tool needs a `name`.", f"{param}.name")
        if tool.function is not None and tool.function.parameters is not None:
            check_schema(
                tool.function.parameters, f"function {quote(tool.name)}", f"{param}.parameters"
            )
    _check_tool_choice(chat)
    fmt = chat.response_format
    if isinstance(fmt, JsonSchemaFormat):
        if not fmt.json_schema.name:
            raise invalid(
                "A `json_schema` response format needs a `name`.",
                "response_format.json_schema.name",
            )
        if fmt.json_schema.schema is not None:
            check_schema(
                fmt.json_schema.schema,
                f"response format {quote(fmt.json_schema.name)}",
                "response_format.json_schema.schema",
            )
    return chat


def _chosen(choice: FunctionChoice | CustomChoice) -> tuple[str, str]:
    """A tool choice's (type, name)."""
    if isinstance(choice, FunctionChoice):
        return "function", choice.function.name
    return "custom", choice.custom.name


def _check_tool_choice(chat: ChatRequest) -> None:
    tools = {(tool.type, tool.name) for tool in chat.tools or ()}
    choice = chat.tool_choice
    if isinstance(choice, (FunctionChoice, CustomChoice)):
        chosen = [(_chosen(choice), "tool_choice")]
    elif isinstance(choice, AllowedToolsChoice):
        chosen = [
            (_chosen(c), f"tool_choice.allowed_tools.tools[{i}]")
            for i, c in enumerate(choice.allowed_tools.tools)
        ]
    else:
        return
    for (kind, name), param in chosen:
        if (kind, name) not in tools:
            raise invalid(
                f"Tool choice {quote(name)} is not among the request's {kind} tools.",
                f"{param}.{kind}.name",
            )


# ---------------------------------------------------------------- translation


def _user_part(part: TextPart | ImagePart | AudioPart | FilePart, param: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        return {
            "type": "input_image",
            "image_url": part.image_url.url,
            "detail": part.image_url.detail or "auto",
        }
    if isinstance(part, FilePart):
        if part.file.file_data is None and part.file.file_id is None:
            raise invalid("A `file` part needs `file_data` or `file_id`.", f"{param}.file")
        return {"type": "input_file", **msgspec.to_builtins(part.file)}
    raise invalid(
        "`input_audio` parts are not supported: the gateway's request model has no audio input.",
        f"{param}.type",
    )


def _text_parts(content: str | list[TextPart]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [{"type": "input_text", "text": part.text} for part in content]


def _call_item(call: ToolCall, param: str) -> dict[str, Any]:
    """A tool call of an assistant message as a `function_call` or `custom_tool_call` item."""
    body = call.function if call.type == "function" else call.custom
    if body is None:
        raise invalid(f"A `{call.type}` tool call needs `{call.type}`.", f"{param}.{call.type}")
    field = CALL_FIELDS[call.type]
    item_type = next(item for item, kind in CALL_ITEMS.items() if kind == call.type)
    return {"type": item_type, "call_id": call.id, "name": body.name, field: getattr(body, field)}


def _assistant(message: AssistantMessage, param: str) -> list[dict[str, Any]]:
    """An assistant message as Responses items: its `reasoning_content` as a reasoning item
    (an upstream that takes reasoning text back gets it; the others drop it, as they drop
    any reasoning without its opaque state), its message (text, refusal), then one call
    item per tool call."""
    items: list[dict[str, Any]] = []
    if message.reasoning_content:
        items.append(
            {
                "type": "reasoning",
                "content": [{"type": "reasoning_text", "text": message.reasoning_content}],
            }
        )
    content = message.content
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append({"type": "output_text", "text": content})
    else:
        for part in content or ():
            if isinstance(part, TextPart):
                parts.append({"type": "output_text", "text": part.text})
            else:
                parts.append({"type": "refusal", "refusal": part.refusal})
    if message.refusal:
        parts.append({"type": "refusal", "refusal": message.refusal})
    if parts:
        items.append({"type": "message", "role": "assistant", "content": parts})
    for j, call in enumerate(message.tool_calls or ()):
        items.append(_call_item(call, f"{param}.tool_calls[{j}]"))
    return items


def _items(messages: list[Message]) -> list[dict[str, Any]]:
    """The messages as Responses input items (each role's own translation)."""
    items: list[dict[str, Any]] = []
    custom_calls: set[str] = set()  # ids of custom tool calls: their results are custom too
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if isinstance(message, (DeveloperMessage, SystemMessage)):
            role = "developer" if isinstance(message, DeveloperMessage) else "system"
            items.append({"type": "message", "role": role, "content": _text_parts(message.content)})
        elif isinstance(message, UserMessage):
            content = message.content
            if not isinstance(content, str):
                content = [_user_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)]
            items.append({"type": "message", "role": "user", "content": content})
        elif isinstance(message, AssistantMessage):
            items += _assistant(message, param)
            custom_calls |= {c.id for c in message.tool_calls or () if c.type == "custom"}
        elif isinstance(message, ToolMessage):
            custom = message.tool_call_id in custom_calls
            items.append(
                {
                    "type": "custom_tool_call_output" if custom else "function_call_output",
                    "call_id": message.tool_call_id,
                    "output": _text_parts(message.content),
                }
            )
        else:
            raise invalid(
                "The deprecated `function` role is not supported; send tool results "
                "as `tool` messages.",
                f"{param}.role",
            )
    return items


def _tool_choice(choice: ToolChoice | None) -> str | dict[str, Any] | None:
    if isinstance(choice, (FunctionChoice, CustomChoice)):
        kind, name = _chosen(choice)
        return {"type": kind, "name": name}
    if isinstance(choice, AllowedToolsChoice):
        allowed = choice.allowed_tools
        tools = [dict(zip(("type", "name"), _chosen(c), strict=True)) for c in allowed.tools]
        return {"type": "allowed_tools", "mode": allowed.mode, "tools": tools}
    return choice


def _tool(tool: Tool) -> dict[str, Any]:
    """A function or custom tool as the Responses request holds it."""
    if tool.function is not None:  # name, description, parameters, strict: the same fields
        return {"type": "function", **msgspec.to_builtins(tool.function)}
    assert tool.custom is not None  # parse_chat_request checked it
    fmt = tool.custom.format
    wire: dict[str, Any] = {"type": "text"}
    if isinstance(fmt, CustomGrammar):
        wire = {"type": "grammar", **msgspec.to_builtins(fmt.grammar)}
    return {
        "type": "custom",
        "name": tool.custom.name,
        "description": tool.custom.description,
        "format": wire,
    }


def _text_format(chat: ChatRequest) -> TextConfig | None:
    fmt = chat.response_format
    if isinstance(fmt, JsonSchemaFormat):
        spec = fmt.json_schema
        text_format = TextFormat(
            type="json_schema",
            name=spec.name,
            description=spec.description,
            schema=spec.schema or {},
            strict=spec.strict,
        )
    elif isinstance(fmt, JsonObject):
        text_format = TextFormat(type="json_object")
    elif chat.verbosity is None:
        return None
    else:
        text_format = TextFormat()
    return TextConfig(format=text_format, verbosity=chat.verbosity)


def to_create_request(chat: ChatRequest) -> CreateRequest:
    """The Responses request the engine runs for `chat`: stored only with `store: true`."""
    items = _items(chat.messages)
    tools = [_tool(t) for t in chat.tools or ()]
    req = CreateRequest(
        model=chat.model,
        input=items,
        tools=tools,
        tool_choice=_tool_choice(chat.tool_choice),
        parallel_tool_calls=chat.parallel_tool_calls,
        text=_text_format(chat),
        reasoning=None
        if chat.reasoning_effort is None
        else ReasoningConfig(effort=chat.reasoning_effort),
        max_output_tokens=chat.max_completion_tokens or chat.max_tokens,
        temperature=chat.temperature,
        top_p=chat.top_p,
        presence_penalty=chat.presence_penalty,
        frequency_penalty=chat.frequency_penalty,
        include=[LOGPROBS] if chat.logprobs else None,
        top_logprobs=chat.top_logprobs,
        store=chat.store is True,
        stream=chat.stream,
        metadata=chat.metadata,
        user=chat.user,
        safety_identifier=chat.safety_identifier,
        prompt_cache_key=chat.prompt_cache_key,
        service_tier=chat.service_tier,
    )
    req.items = normalize_input(items, "messages")
    req.stop = [chat.stop] if isinstance(chat.stop, str) else chat.stop or None
    req.surface = CHAT_SURFACE  # a stored call is listed as a chat completion
    req.warnings = [
        f"`{name}` is not supported by this gateway and was ignored"
        for name in IGNORED
        if getattr(chat, name) is not None
    ]
    if any(m.name for m in chat.messages):  # the Responses request model has no field for it
        req.warnings.append("a message's `name` is not supported by this gateway and was ignored")
    return req
