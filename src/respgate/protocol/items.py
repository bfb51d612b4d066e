"""Items as OpenAI returns them once stored (the canonical form).

A client may send `{"role": "user", "content": "hi"}`; what a stored-item endpoint
(`GET /v1/responses/{id}/input_items`, the Conversations items) answers is the item as
OpenAI keeps it: content as parts (`input_text` for user, system and developer messages,
`output_text` with `annotations` for assistant ones), an input image's `detail`, and a
`status` on messages and tool calls and their outputs. `include` (the
`ResponseIncludable` values) decides whether an input image's `image_url`, reasoning
`encrypted_content` and output-text `logprobs` are shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import invalid, quote

# OpenAI's `ResponseIncludable` values (accepted; the two below change what is shown).
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
ENCRYPTED_CONTENT = "reasoning.encrypted_content"
LOGPROBS = "message.output_text.logprobs"
IMAGE_URL = "message.input_image.image_url"

# Item types whose stored form always carries a `status`.
WITH_STATUS = frozenset(
    {"message", "function_call", "function_call_output", "custom_tool_call",
     "custom_tool_call_output"}
)  # fmt: skip


def canonical(item: dict[str, Any]) -> dict[str, Any]:
    """`item` (normalised by `protocol.request`) in the form OpenAI stores it (a copy)."""
    out = dict(item)
    if out["type"] == "message":
        content = out["content"]
        if isinstance(content, str):
            kind = "output_text" if out["role"] == "assistant" else "input_text"
            content = [{"type": kind, "text": content}]
        out["content"] = [_canonical_part(part) for part in content]
    if out["type"] in WITH_STATUS and not out.get("status"):
        out["status"] = "completed"
    return out


def _canonical_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "output_text":
        return {**part, "annotations": part.get("annotations") or []}
    if part["type"] == "input_image":
        return {**part, "detail": part.get("detail") or "auto"}
    return part


def uncalled_output_text(item: dict[str, Any], text: str) -> str:
    """A tool output that answers no call (a `function_call_output` with a `name` and no
    `call_id`: Codex's `goals` context) as the text of a user message, for the
    dialects whose tool results must each answer a call: `[namespace.name]` then `text`."""
    name = ".".join(part for part in (item.get("namespace"), item.get("name")) if part)
    return f"[{name}]\n{text}"


def parse_include(values: Iterable[str], param: str = "include") -> frozenset[str]:
    """The `include` values of a request; 400 naming the first unknown one."""
    for index, value in enumerate(values):
        if value not in INCLUDABLE:
            raise invalid(
                f"Invalid value {quote(value)} for `include`; supported: "
                f"{', '.join(sorted(INCLUDABLE))}.",
                f"{param}[{index}]",
            )
    return frozenset(values)


# Part type -> (the field `include` must ask for to show, the `include` value).
HIDDEN_PART_FIELDS = {
    "output_text": ("logprobs", LOGPROBS),
    "input_image": ("image_url", IMAGE_URL),
}


def shown(item: dict[str, Any], include: frozenset[str]) -> dict[str, Any]:
    """A stored item as a listing shows it: an input image's `image_url`, reasoning
    `encrypted_content` and output-text `logprobs` only when `include` asks for them."""
    if item["type"] == "reasoning" and ENCRYPTED_CONTENT not in include:
        if "encrypted_content" in item:
            item = {k: v for k, v in item.items() if k != "encrypted_content"}
    elif item["type"] == "message" and isinstance(item.get("content"), list):
        item = {**item, "content": [_shown_part(part, include) for part in item["content"]]}
    return item


def shown_response(response: dict[str, Any], include: frozenset[str]) -> dict[str, Any]:
    """A stored Response as `GET /v1/responses/{id}` shows it: as it was created, but for
    reasoning `encrypted_content`, shown only when `include` asks for it (the record keeps
    it whatever the request asked, to continue the chain)."""
    output = response.get("output") or []
    if ENCRYPTED_CONTENT in include or not any(
        item.get("type") == "reasoning" and "encrypted_content" in item for item in output
    ):
        return response
    return {**response, "output": [shown(item, include) if item.get("type") == "reasoning"
                                   else item for item in output]}  # fmt: skip


def _shown_part(part: dict[str, Any], include: frozenset[str]) -> dict[str, Any]:
    field, needs = HIDDEN_PART_FIELDS.get(part.get("type", ""), ("", ""))
    if field in part and needs not in include:
        return {k: v for k, v in part.items() if k != field}
    return part
