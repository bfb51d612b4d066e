"""The neutral signals a provider emits; the whole vocabulary.

A provider turns its upstream stream into these and nothing else. The
`ResponseBuilder` alone turns them into Responses wire events. Add a signal
only when a real upstream needs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FinishReason = Literal["stop", "max_output_tokens", "content_filter", "max_steps"]
"""`stop` ends `completed`; the others end `incomplete` with that reason (`max_steps`: the
gateway's tool loop made its `[mcp] max_steps` model calls, `toolloop.py`)."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text; `logprobs` are the upstream's for these tokens (OpenAI's shape), if asked."""

    text: str
    logprobs: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Annotation:
    """An annotation (`url_citation`, `file_citation` ...) on the answer text so far."""

    annotation: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HostedItem:
    """An item of a tool the upstream runs itself (`web_search_call`, `mcp_call` ...;
    `lifecycle.HOSTED_EVENTS`), number `index` in the upstream's own numbering.

    The first signal for an index opens the item as `item` (the upstream's id is
    kept: the upstream needs it back). `event` is one of the type's progress events
    with `data`, its own fields (`delta`, `partial_image_b64` ...). `done` completes
    the item, `item` then being the whole item.
    """

    index: int
    item: dict[str, Any] | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    done: bool = False


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    kind: Literal["summary", "raw"] = "summary"


@dataclass(frozen=True, slots=True)
class ReasoningOpaque:
    """Opaque reasoning state (a signature or redacted block) kept as `encrypted_content`.

    It completes the open reasoning item; with none open it is a reasoning item of its own.
    """

    encrypted_content: str


@dataclass(frozen=True, slots=True)
class Compaction:
    """A compaction item, whole: the summary of the context, sealed by the engine."""

    encrypted_content: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of tool call number `index` (the upstream's own numbering).

    `kind` picks the item: a `function_call` (`arguments` is JSON text) or a
    `custom_tool_call` (`arguments` is the free-form `input` text). `namespace`
    is the namespace tool the function belongs to. `kind` and `namespace` are
    read from a call's first fragment.
    """

    index: int
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    kind: Literal["function", "custom"] = "function"
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage so far; a later `Usage` replaces an earlier one."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0  # input tokens read from a prompt cache (counted in input_tokens)
    reasoning_tokens: int = 0  # output tokens spent on reasoning (counted in output_tokens)
    cache_write_tokens: int = 0  # input tokens written to a prompt cache (counted in input_tokens)


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason = "stop"
    stop_sequence: str | None = None  # the request's stop sequence that ended the reply, if known


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str


Signal = (
    TextDelta
    | Annotation
    | HostedItem
    | RefusalDelta
    | ReasoningDelta
    | ReasoningOpaque
    | Compaction
    | ToolCallDelta
    | Usage
    | Finish
    | Failure
)
