"""Test oracles: the spec's OpenAPI schemas (jsonschema), openai's pydantic
event union, and the strict checker, applied to every event a test sees."""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Annotated, Any, Union, get_args, get_origin

import jsonschema
import openai
from pydantic import Field, TypeAdapter

from respgate.protocol.validate import check_events

EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedStreamingEvent",
    "response.queued": "ResponseQueuedStreamingEvent",
    "response.in_progress": "ResponseInProgressStreamingEvent",
    "response.completed": "ResponseCompletedStreamingEvent",
    "response.failed": "ResponseFailedStreamingEvent",
    "response.incomplete": "ResponseIncompleteStreamingEvent",
    "response.output_item.added": "ResponseOutputItemAddedStreamingEvent",
    "response.output_item.done": "ResponseOutputItemDoneStreamingEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedStreamingEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneStreamingEvent",
    "response.content_part.added": "ResponseContentPartAddedStreamingEvent",
    "response.content_part.done": "ResponseContentPartDoneStreamingEvent",
    "response.output_text.delta": "ResponseOutputTextDeltaStreamingEvent",
    "response.output_text.done": "ResponseOutputTextDoneStreamingEvent",
    "response.refusal.delta": "ResponseRefusalDeltaStreamingEvent",
    "response.refusal.done": "ResponseRefusalDoneStreamingEvent",
    "response.reasoning.delta": "ResponseReasoningDeltaStreamingEvent",
    "response.reasoning.done": "ResponseReasoningDoneStreamingEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryDeltaStreamingEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryDoneStreamingEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaStreamingEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneStreamingEvent",
    "error": "ErrorStreamingEvent",
}

# respgate uses OpenAI's names for raw reasoning text; Open Responses calls the
# same events response.reasoning.* (documented in docs/design.md).
OPENAI_NAMES = {
    "response.reasoning_text.delta": "response.reasoning.delta",
    "response.reasoning_text.done": "response.reasoning.done",
}


@functools.cache
def _document() -> dict[str, Any]:
    text = (
        resources.files("respgate.protocol")
        .joinpath("spec/openresponses-openapi-2026-04-24.json")
        .read_text()
    )
    return json.loads(text)


@functools.cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    doc = _document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def _spec_view(obj: dict[str, Any]) -> dict[str, Any]:
    """Work around the published schema's known bug: `JsonSchemaResponseFormat.schema`
    is declared as null only, so a real echoed JSON schema cannot validate."""
    target = obj.get("response") if "response" in obj else obj
    text = target.get("text") if isinstance(target, dict) else None
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        obj = copy.deepcopy(obj)
        target = obj.get("response") if "response" in obj else obj
        target["text"]["format"]["schema"] = None
    return obj


def spec_errors(event: dict[str, Any]) -> list[str]:
    event = dict(event, type=OPENAI_NAMES.get(event["type"], event["type"]))
    name = EVENT_SCHEMAS.get(event["type"])
    if name is None:
        return [f"no Open Responses schema for event type {event['type']!r}"]
    return [e.message for e in _validator(name).iter_errors(_spec_view(event))]


def response_spec_errors(response: dict[str, Any]) -> list[str]:
    return [e.message for e in _validator("ResponseResource").iter_errors(_spec_view(response))]


@functools.cache
def _openai_events() -> TypeAdapter:
    union = openai.types.responses.ResponseStreamEvent  # Annotated[Union[...], PropertyInfo]
    args = get_args(union)
    members = get_args(args[0]) if args and get_origin(args[0]) is Union else args
    return TypeAdapter(Annotated[Union[tuple(members)], Field(discriminator="type")])  # noqa: UP007


def openai_event(event: dict[str, Any]) -> Any:
    return _openai_events().validate_python(event)


def assert_valid_stream(events: list[dict[str, Any] | str], *, require_done: bool = True) -> None:
    """Every oracle at once: the strict checker, the spec schemas, openai's pydantic types."""
    violations = check_events(events, require_done=require_done)
    assert not violations, "\n".join(map(str, violations))
    for event in events:
        if isinstance(event, str):
            continue
        errors = spec_errors(event)
        assert not errors, f"{event['type']}: {errors}"
        openai_event(event)
        if "response" in event and event["type"] != "error":
            openai.types.responses.Response.model_validate(event["response"])


def parse_sse(body: bytes) -> list[dict[str, Any] | str]:
    """Parse a whole SSE body produced by respgate, checking the framing rules on the way."""
    text = body.decode()
    assert "\r" not in text, "LF-only framing"
    assert text.endswith("\n\n"), "every frame ends with a blank line"
    events: list[dict[str, Any] | str] = []
    for block in text.split("\n\n")[:-1]:
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue  # keep-alive comment
        assert not any(line.startswith(("id:", "retry:")) for line in lines), block
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert len(data) == 1, f"exactly one data line per frame: {block!r}"
        if data[0] == "[DONE]":
            assert len(lines) == 1
            events.append("[DONE]")
            continue
        event = json.loads(data[0])
        names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
        assert names == [event["type"]], f"event: line must equal type: {block!r}"
        events.append(event)
    return events
