"""The Response object: built once from the request, with every field of the
spec's ResponseResource present (nullable ones as null, numbers never null)."""

from __future__ import annotations

from typing import Any

from .request import CreateRequest


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
    return {
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


# What `include` may name (OpenAI's `ResponseIncludable`); GET .../input_items honours the
# ones that concern input items and accepts the rest.
INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
# Item types that carry a `status` when OpenAI lists them.
STATUS_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output"})


def input_item_wire(item: dict[str, Any], include: frozenset[str]) -> dict[str, Any]:
    """A stored input item as OpenAI lists it (`GET /v1/responses/{id}/input_items`): a
    message's content as parts (`input_text`, or `output_text` with `annotations` for an
    assistant), a `status` on messages and function calls and outputs, an image's `detail`.
    Some values only with `include`: the `image_url` of an input image
    (`message.input_image.image_url`), a reasoning item's `encrypted_content`
    (`reasoning.encrypted_content`), output text `logprobs` (`message.output_text.logprobs`)."""
    out = dict(item)
    kind = item.get("type")
    if kind in STATUS_ITEM_TYPES and not out.get("status"):
        out["status"] = "completed"
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            text_type = "output_text" if item.get("role") == "assistant" else "input_text"
            content = [{"type": text_type, "text": content}]
        out["content"] = [_part_wire(part, include) for part in content or []]
    elif kind == "reasoning" and "reasoning.encrypted_content" not in include:
        out.pop("encrypted_content", None)
    return out


def _part_wire(part: dict[str, Any], include: frozenset[str]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "output_text":
        part = {**part, "annotations": part.get("annotations") or []}
        if "message.output_text.logprobs" not in include:
            part.pop("logprobs", None)
    elif kind == "input_image":
        part = {**part, "detail": part.get("detail") or "auto"}
        if "message.input_image.image_url" not in include:
            part.pop("image_url", None)
    return part
