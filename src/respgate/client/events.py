"""Typed Responses stream events: msgspec Structs in a union tagged by `type`.

Field names are the wire's. Nested objects (`response`, `item`, `part`,
`annotation`) stay plain dicts: they are the Response snapshot's own shapes and
the accumulator edits copies of them. An event whose `type` is not in the
union (or whose fields do not fit it) becomes an `UnknownEvent` carrying the
decoded JSON, never an exception, so new event types pass through.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, TypeAlias, Union, get_args

import msgspec

from ..protocol.lifecycle import OPEN_RESPONSES_NAMES

Json: TypeAlias = dict[str, Any]


class _Event(msgspec.Struct, kw_only=True, tag_field="type"):
    type: ClassVar[str]
    sequence_number: int | None = None


class _ResponseEvent(_Event, kw_only=True):
    response: Json


class _ItemEvent(_Event, kw_only=True):
    output_index: int
    item_id: str = ""


class _ContentEvent(_ItemEvent, kw_only=True):
    content_index: int


class _SummaryEvent(_ItemEvent, kw_only=True):
    summary_index: int


# ------------------------------------------------------------------ lifecycle


class ResponseCreated(_ResponseEvent, tag="response.created"):
    pass


class ResponseQueued(_ResponseEvent, tag="response.queued"):
    pass


class ResponseInProgress(_ResponseEvent, tag="response.in_progress"):
    pass


class ResponseCompleted(_ResponseEvent, tag="response.completed"):
    pass


class ResponseIncomplete(_ResponseEvent, tag="response.incomplete"):
    pass


class ResponseFailed(_ResponseEvent, tag="response.failed"):
    pass


class ErrorEvent(_Event, tag="error"):
    """A flat `error` event; some servers nest the fields under `error` instead."""

    code: str | None = None
    message: str | None = None
    param: str | None = None
    error: Json | None = None


# ------------------------------------------------------------------ items and parts


class OutputItemAdded(_Event, tag="response.output_item.added"):
    output_index: int
    item: Json


class OutputItemDone(_Event, tag="response.output_item.done"):
    output_index: int
    item: Json


class ContentPartAdded(_ContentEvent, tag="response.content_part.added"):
    part: Json


class ContentPartDone(_ContentEvent, tag="response.content_part.done"):
    part: Json


class OutputTextDelta(_ContentEvent, tag="response.output_text.delta"):
    delta: str
    logprobs: list[Any] = []


class OutputTextDone(_ContentEvent, tag="response.output_text.done"):
    text: str
    logprobs: list[Any] = []


class OutputTextAnnotationAdded(_ContentEvent, tag="response.output_text.annotation.added"):
    annotation_index: int
    annotation: Json


class RefusalDelta(_ContentEvent, tag="response.refusal.delta"):
    delta: str


class RefusalDone(_ContentEvent, tag="response.refusal.done"):
    refusal: str


class FunctionCallArgumentsDelta(_ItemEvent, tag="response.function_call_arguments.delta"):
    delta: str


class FunctionCallArgumentsDone(_ItemEvent, tag="response.function_call_arguments.done"):
    arguments: str
    name: str | None = None


class CustomToolCallInputDelta(_ItemEvent, tag="response.custom_tool_call_input.delta"):
    delta: str


class CustomToolCallInputDone(_ItemEvent, tag="response.custom_tool_call_input.done"):
    input: str


class McpCallArgumentsDelta(_ItemEvent, tag="response.mcp_call_arguments.delta"):
    delta: str


class McpCallArgumentsDone(_ItemEvent, tag="response.mcp_call_arguments.done"):
    arguments: str


class CodeInterpreterCallCodeDelta(_ItemEvent, tag="response.code_interpreter_call_code.delta"):
    delta: str


class CodeInterpreterCallCodeDone(_ItemEvent, tag="response.code_interpreter_call_code.done"):
    code: str


class ReasoningTextDelta(_ContentEvent, tag="response.reasoning_text.delta"):
    delta: str


class ReasoningTextDone(_ContentEvent, tag="response.reasoning_text.done"):
    text: str


class ReasoningSummaryPartAdded(_SummaryEvent, tag="response.reasoning_summary_part.added"):
    part: Json


class ReasoningSummaryPartDone(_SummaryEvent, tag="response.reasoning_summary_part.done"):
    part: Json


class ReasoningSummaryTextDelta(_SummaryEvent, tag="response.reasoning_summary_text.delta"):
    delta: str


class ReasoningSummaryTextDone(_SummaryEvent, tag="response.reasoning_summary_text.done"):
    text: str


class UnknownEvent(msgspec.Struct):
    """An event this library has no type for: its `type` (or "" if it has none)
    and its decoded `data` (the raw string when the data is not JSON)."""

    type: str
    data: Any


Event: TypeAlias = (
    ResponseCreated
    | ResponseQueued
    | ResponseInProgress
    | ResponseCompleted
    | ResponseIncomplete
    | ResponseFailed
    | ErrorEvent
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | OutputTextDelta
    | OutputTextDone
    | OutputTextAnnotationAdded
    | RefusalDelta
    | RefusalDone
    | FunctionCallArgumentsDelta
    | FunctionCallArgumentsDone
    | CustomToolCallInputDelta
    | CustomToolCallInputDone
    | McpCallArgumentsDelta
    | McpCallArgumentsDone
    | CodeInterpreterCallCodeDelta
    | CodeInterpreterCallCodeDone
    | ReasoningTextDelta
    | ReasoningTextDone
    | ReasoningSummaryPartAdded
    | ReasoningSummaryPartDone
    | ReasoningSummaryTextDelta
    | ReasoningSummaryTextDone
    | UnknownEvent
)

TERMINAL_EVENTS = (ResponseCompleted, ResponseIncomplete, ResponseFailed)

KNOWN_EVENTS: tuple[type[_Event], ...] = tuple(t for t in get_args(Event) if t is not UnknownEvent)
for _cls in KNOWN_EVENTS:
    _cls.type = _cls.__struct_config__.tag  # type: ignore[misc]

_union = Union[KNOWN_EVENTS]  # noqa: UP007
_decoder = msgspec.json.Decoder(_union)


def decode_event(data: str | bytes) -> Event:
    """The typed event for one SSE `data` payload; `UnknownEvent` if it has no type here."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        pass
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return UnknownEvent("", data if isinstance(data, str) else data.decode("utf-8", "replace"))
    event_type = obj.get("type") if isinstance(obj, dict) else None
    if event_type in OPEN_RESPONSES_NAMES:  # the spec's name: typed under OpenAI's name
        with contextlib.suppress(msgspec.ValidationError):
            return msgspec.convert({**obj, "type": OPEN_RESPONSES_NAMES[event_type]}, _union)
    return UnknownEvent(event_type if isinstance(event_type, str) else "", obj)
