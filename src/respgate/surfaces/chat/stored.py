"""Stored chat completions, as OpenAI serves them (`store: true`): a chat call is stored as
a Response whose `surface` is `CHAT_SURFACE`; its completion id is `chatcmpl-` and the
response id's digits. The completion itself is `builder.completion_of(response)`; this
module holds the ids and the stored input items shown as chat messages again
(`GET /v1/chat/completions/{id}/messages`)."""

from __future__ import annotations

from typing import Any

from ...protocol.errors import ApiError, not_found, quote
from ...protocol.items import uncalled_output_text
from .builder import CALL_FIELDS, COMPLETION_PREFIX

CHAT_SURFACE = "chat.completions"


def response_id_of(completion: str) -> str:
    """The response id behind a completion id (404 for an id that is not one)."""
    if not completion.startswith(COMPLETION_PREFIX) or completion == COMPLETION_PREFIX:
        raise completion_not_found(completion)
    return "resp_" + completion.removeprefix(COMPLETION_PREFIX)


def completion_not_found(completion: str) -> ApiError:
    return not_found(f"No chat completion found with id {quote(completion)}.", "not_found")


def _text(parts: list[dict[str, Any]]) -> str | None:
    texts = [p["text"] for p in parts if p.get("type") in ("input_text", "output_text")]
    return "".join(texts) if texts else None


def _content_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """A message's parts as `content_parts` (text and images); None for one text part (a
    stored item no longer says whether the client sent a string or parts)."""
    shown: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") in ("input_text", "output_text"):
            shown.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "input_image":
            shown.append(
                {
                    "type": "image_url",
                    "image_url": {"url": part.get("image_url"), "detail": part.get("detail")},
                }
            )
    if len(shown) == 1 and shown[0]["type"] == "text":
        return None
    return shown or None


def stored_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored chat call's input items (canonical, oldest first) as the messages it was
    sent: message items by role, `function_call`/`custom_tool_call` items as the
    `tool_calls` of the assistant message before them, their outputs as `tool` messages,
    a reasoning item's text as the `reasoning_content` of the assistant message after it."""
    messages: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            parts = item.get("content") or []
            message: dict[str, Any] = {
                "role": item["role"],
                "content": _text(parts),
                "name": None,
                "content_parts": _content_parts(parts),
            }
            refusal = [p["refusal"] for p in parts if p.get("type") == "refusal"]
            if item["role"] == "assistant":
                message["refusal"] = "".join(refusal) or None
                if reasoning:
                    message["reasoning_content"] = "".join(reasoning)
                    reasoning = []
            messages.append(message)
        elif kind == "reasoning":
            reasoning += [p.get("text", "") for p in item.get("summary") or ()]
            reasoning += [p.get("text", "") for p in item.get("content") or ()]
        elif kind in ("function_call", "custom_tool_call"):
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant" or reasoning:
                last = {"role": "assistant", "content": None, "name": None, "refusal": None}
                if reasoning:
                    last["reasoning_content"] = "".join(reasoning)
                    reasoning = []
                messages.append(last)
            call_type = "function" if kind == "function_call" else "custom"
            field = CALL_FIELDS[call_type]
            call = {"name": item.get("name"), field: item.get(field) or ""}
            last.setdefault("tool_calls", []).append(
                {"id": item.get("call_id"), "type": call_type, call_type: call}
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output or [])
            if item.get("call_id") is None:  # it answered no call
                messages.append({"role": "user", "content": uncalled_output_text(item, text)})
            else:
                messages.append(
                    {"role": "tool", "content": text, "tool_call_id": item.get("call_id")}
                )
    return messages
