"""Typed Responses stream events: msgspec Structs in a union tagged by `type`.

Field names are the wire's. Nested objects (`response`, `item`, `part`,
`annotation`) stay plain dicts: they are the Response snapshot's own shapes and
the accumulator edits copies of them. An event whose `type` is not in the
union (or whose fields do not fit it) becomes an `UnknownEvent` carrying the
decoded JSON, never an exception, so new event types pass through.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeAlias, Union, get_args

import msgspec

Json: TypeAlias = dict[str, Any]


class _Event(msgspec.Struct, kw_only=True, tag_field="type"):
    type: ClassVar[str]
    sequence_number: int | None = None


# ------------------------------------------------------------------ lifecycle


class ResponseCreated(_Event, tag="response.created"):
    response: Json


class ResponseQueued(_Event, tag="response.queued"):
    response: Json


class ResponseInProgress(_Event, tag="response.in_progress"):
    response: Json


class ResponseCompleted(_Event, tag="response.completed"):
    response: Json


class ResponseIncomplete(_Event, tag="response.incomplete"):
    response: Json


class ResponseFailed(_Event, tag="response.failed"):
    response: Json


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


class ContentPartAdded(_Event, tag="response.content_part.added"):
    output_index: int
    content_index: int
    part: Json
    item_id: str = ""


class ContentPartDone(_Event, tag="response.content_part.done"):
    output_index: int
    content_index: int
    part: Json
    item_id: str = ""


class OutputTextDelta(_Event, tag="response.output_text.delta"):
    output_index: int
    content_index: int
    delta: str
    item_id: str = ""
    logprobs: list[Any] = []


class OutputTextDone(_Event, tag="response.output_text.done"):
    output_index: int
    content_index: int
    text: str
    item_id: str = ""
    logprobs: list[Any] = []


class OutputTextAnnotationAdded(_Event, tag="response.output_text.annotation.added"):
    output_index: int
    content_index: int
    annotation_index: int
    annotation: Json
    item_id: str = ""


class RefusalDelta(_Event, tag="response.refusal.delta"):
    output_index: int
    content_index: int
    delta: str
    item_id: str = ""


class RefusalDone(_Event, tag="response.refusal.done"):
    output_index: int
    content_index: int
    refusal: str
    item_id: str = ""


class FunctionCallArgumentsDelta(_Event, tag="response.function_call_arguments.delta"):
    output_index: int
    delta: str
    item_id: str = ""


class FunctionCallArgumentsDone(_Event, tag="response.function_call_arguments.done"):
    output_index: int
    arguments: str
    item_id: str = ""
    name: str | None = None


class ReasoningTextDelta(_Event, tag="response.reasoning_text.delta"):
    output_index: int
    content_index: int
    delta: str
    item_id: str = ""


class ReasoningTextDone(_Event, tag="response.reasoning_text.done"):
    output_index: int
    content_index: int
    text: str
    item_id: str = ""


class ReasoningSummaryPartAdded(_Event, tag="response.reasoning_summary_part.added"):
    output_index: int
    summary_index: int
    part: Json
    item_id: str = ""


class ReasoningSummaryPartDone(_Event, tag="response.reasoning_summary_part.done"):
    output_index: int
    summary_index: int
    part: Json
    item_id: str = ""


class ReasoningSummaryTextDelta(_Event, tag="response.reasoning_summary_text.delta"):
    output_index: int
    summary_index: int
    delta: str
    item_id: str = ""


class ReasoningSummaryTextDone(_Event, tag="response.reasoning_summary_text.done"):
    output_index: int
    summary_index: int
    text: str
    item_id: str = ""


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

_decoder = msgspec.json.Decoder(Union[KNOWN_EVENTS])  # noqa: UP007


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
    return UnknownEvent(event_type if isinstance(event_type, str) else "", obj)
