"""The Response object: built once from the request, with every field of the
spec's ResponseResource present (nullable ones as null, numbers never null)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .request import CreateRequest
from .signals import (
    Annotation,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Signal,
    TextDelta,
    ToolCallDelta,
    Usage,
)

CALL_ITEMS = {"function_call": "function", "custom_tool_call": "custom"}
INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "max_output_tokens",
    "content_filter": "content_filter",
}


def list_object(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A page of a list endpoint as OpenAI answers it: `data`, the ids of its first and
    last entries (`after` takes the last), `has_more`."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def new_response(
    req: CreateRequest, response_id: str, created_at: int, *, model: str | None = None
) -> dict[str, Any]:
    text: dict[str, Any] = {"format": {"type": "text"}, "verbosity": "medium"}
    if req.text is not None:
        fmt = req.text.format
        if fmt.type == "json_schema":
            text["format"] = {
                "type": "json_schema",
                "name": fmt.name,
                "description": fmt.description,
                "schema": fmt.schema,
                "strict": bool(fmt.strict),
            }
        else:
            text["format"] = {"type": fmt.type}
        if req.text.verbosity:
            text["verbosity"] = req.text.verbosity
    reasoning = req.reasoning
    response = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": None,
        "status": "in_progress",
        "background": bool(req.background),
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "model": model or req.model,
        "output": [],
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "prompt_cache_key": req.prompt_cache_key,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
        },
        "safety_identifier": req.safety_identifier,
        "service_tier": "default" if req.service_tier in (None, "auto") else req.service_tier,
        "store": True if req.store is None else req.store,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": text,
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": list(req.tools or []),
        "top_logprobs": req.top_logprobs or 0,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "presence_penalty": req.presence_penalty or 0.0,
        "frequency_penalty": req.frequency_penalty or 0.0,
        "truncation": req.truncation or "disabled",
        "usage": None,
        "user": req.user,
        "metadata": dict(req.metadata or {}),
    }
    if req.conversation_id is not None:
        response["conversation"] = {"id": req.conversation_id}
    if req.surface is not None:
        response["surface"] = req.surface
    return response


def usage_object(
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": cached_tokens,
            "cache_write_tokens": cache_write_tokens,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def usage_of(usage: dict[str, Any] | None) -> list[Signal]:
    """A Responses `usage` object as the `Usage` signal (none without one)."""
    if not usage:
        return []
    return [
        Usage(
            input_tokens=usage.get("input_tokens") or 0,
            output_tokens=usage.get("output_tokens") or 0,
            cached_tokens=(usage.get("input_tokens_details") or {}).get("cached_tokens") or 0,
            reasoning_tokens=(usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            or 0,
        )
    ]


def response_signals(response: dict[str, Any]) -> Iterator[Signal]:
    """The signals that build a finished Response's output again (a stored response shown
    through another surface, e.g. `GET /v1/chat/completions/{id}`): text with its logprobs
    and annotations, refusals, reasoning text, tool calls whole, usage and the finish
    (`incomplete`: its reason; any other status: `stop`). Items with no signal form
    (hosted tools, opaque reasoning, compaction) are left out."""
    for index, item in enumerate(response.get("output") or ()):
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    yield TextDelta(part.get("text", ""), tuple(part.get("logprobs") or ()))
                    for annotation in part.get("annotations") or ():
                        yield Annotation(annotation)
                elif part.get("type") == "refusal":
                    yield RefusalDelta(part.get("refusal", ""))
        elif kind == "reasoning":
            for part in item.get("summary") or ():
                yield ReasoningDelta(part.get("text", ""))
            for part in item.get("content") or ():
                yield ReasoningDelta(part.get("text", ""), "raw")
        elif kind in CALL_ITEMS:
            call = CALL_ITEMS[kind]
            arguments = item.get("arguments" if call == "function" else "input") or ""
            yield ToolCallDelta(index, item.get("call_id"), item.get("name"), arguments, call)
    yield from usage_of(response.get("usage"))
    reason = (response.get("incomplete_details") or {}).get("reason", "")
    incomplete = response.get("status") == "incomplete"
    yield Finish(INCOMPLETE_REASONS.get(reason, "max_output_tokens") if incomplete else "stop")
