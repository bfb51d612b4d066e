"""Test oracles: the spec's OpenAPI schemas (jsonschema), openai's pydantic
event union, and the strict checker, applied to every event a test sees."""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Union, get_args, get_origin

import openai
from pydantic import Field, TypeAdapter

from respgate.check import has_schema, schema_errors
from respgate.protocol.lifecycle import HOSTED_EVENTS, HOSTED_ITEM_EVENTS
from respgate.protocol.validate import check_events

# Events respgate emits that OpenAI defines and Open Responses does not (custom
# tools, hosted-tool items' progress), and the item types of those events.
OPENAI_ONLY_EVENTS = frozenset(
    {"response.custom_tool_call_input.delta", "response.custom_tool_call_input.done"}
    | HOSTED_ITEM_EVENTS
)
# Items and annotations only OpenAI defines; the spec schemas check the rest of
# an event (the openai SDK's models check all of it).
OPENAI_ONLY_TYPES = frozenset(
    {"custom_tool_call", *HOSTED_EVENTS, "file_citation", "container_file_citation", "file_path"}
)


def spec_errors(event: dict[str, Any]) -> list[str]:
    if not has_schema(event["type"]):
        if event["type"] in OPENAI_ONLY_EVENTS:
            return []
        return [f"no Open Responses schema for event type {event['type']!r}"]
    if any(
        (event.get(key) or {}).get("type") in OPENAI_ONLY_TYPES for key in ("item", "annotation")
    ):
        return []
    return schema_errors(spec_only(function_tools_only(event)))


def spec_only(value: Any) -> Any:
    """`value` without the list entries (items, annotations) only OpenAI defines."""
    if isinstance(value, dict):
        return {k: spec_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [
            spec_only(v)
            for v in value
            if not (isinstance(v, dict) and v.get("type") in OPENAI_ONLY_TYPES)
        ]
    return value


def function_tools_only(event: dict[str, Any]) -> dict[str, Any]:
    """`Response.tools` echoes every tool as sent, as OpenAI does; the Open Responses
    schema knows only function tools, so the others are left out of the schema check."""
    response = event.get("response")
    if not isinstance(response, dict) or all(
        t.get("type") == "function" for t in response["tools"]
    ):
        return event
    tools = [t for t in response["tools"] if t.get("type") == "function"]
    return {**event, "response": {**response, "tools": tools}}


@functools.cache
def _openai_events() -> TypeAdapter:
    union = openai.types.responses.ResponseStreamEvent  # Annotated[Union[...], PropertyInfo]
    args = get_args(union)
    members = get_args(args[0]) if args and get_origin(args[0]) is Union else args
    return TypeAdapter(Annotated[Union[tuple(members)], Field(discriminator="type")])  # noqa: UP007


def openai_event(event: dict[str, Any]) -> Any:
    return _openai_events().validate_python(event)


def assert_valid_stream(
    events: list[dict[str, Any] | str], *, require_done: bool = True, websocket: bool = False
) -> None:
    """Every oracle at once: the strict checker, the spec schemas, openai's pydantic types.
    `websocket`: one WebSocket turn (no [DONE]; `response.failed` without `error`)."""
    violations = check_events(
        events, require_done=require_done and not websocket, websocket=websocket
    )
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
