"""The stream lifecycle, as data: which event may follow which.

Everything that decides the order of events lives in this file. The
`ResponseBuilder` steps these tables for every event it emits and the strict
checker (`validate.py`) steps the same tables for every event it reads, so
emission and validation cannot drift apart. `mermaid()` draws the README
diagram from the same tables.

Two machines:

- the response machine, keyed by response state;
- the item machine, one per output item, keyed by item state. Which events an
  item may see depends on its `type` and on the open part's `type`.
"""

from __future__ import annotations

from typing import Literal

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})

# (response state, event type) -> next response state
RESPONSE_TRANSITIONS: dict[tuple[str, str], str] = {
    ("start", "response.created"): "created",
    ("created", "response.queued"): "queued",
    ("created", "response.in_progress"): "in_progress",
    ("queued", "response.in_progress"): "in_progress",
    ("in_progress", "response.output_item.added"): "item",
    ("item", "response.output_item.done"): "in_progress",
    ("in_progress", "response.completed"): "ended",
    ("in_progress", "response.incomplete"): "ended",
    ("created", "error"): "errored",
    ("queued", "error"): "errored",
    ("in_progress", "error"): "errored",
    ("errored", "response.failed"): "ended",
    ("ended", "[DONE]"): "closed",
}

# Events that belong to the open item (routed to the item machine while the
# response machine is in state "item").
ITEM_EVENTS = frozenset(
    {
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_text.annotation.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.reasoning.delta",
        "response.reasoning.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    }
)

# Content part type -> (delta event, done event, text field). A part's text
# streams through its delta events and is repeated whole in its done event.
PART_EVENTS: dict[str, tuple[str, str, str]] = {
    "output_text": ("response.output_text.delta", "response.output_text.done", "text"),
    "refusal": ("response.refusal.delta", "response.refusal.done", "refusal"),
    "reasoning_text": ("response.reasoning_text.delta", "response.reasoning_text.done", "text"),
}

# Tool call item type -> (delta event, done event, field). The call's `field`
# streams through its delta events and is repeated whole in its done event,
# which must come before `output_item.done`.
CALL_EVENTS: dict[str, tuple[str, str, str]] = {
    "function_call": (
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "arguments",
    ),
    "custom_tool_call": (
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "input",
    ),
}

# Hosted-tool item type -> its progress events (OpenAI's names), one stage per
# tuple entry, in order; a stage may be skipped, `|` separates alternatives.
# These items come from tools the upstream runs itself (web search, code
# interpreter, MCP ...). A `.delta` stage streams a field of the item and
# ends with its `.done`, which repeats the field whole (HOSTED_STREAMS). An item may be closed in
# any other state; closed `completed` (or `failed`, where the type has a failed
# event) it must have reached its last stage.
HOSTED_EVENTS: dict[str, tuple[str, ...]] = {
    "web_search_call": (
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ),
    "file_search_call": (
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ),
    "code_interpreter_call": (
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ),
    "image_generation_call": (
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
    ),
    "mcp_call": (
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed|response.mcp_call.failed",
    ),
    "mcp_list_tools": (
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed|response.mcp_list_tools.failed",
    ),
    "mcp_approval_request": (),
}
# Hosted item type -> (delta event, done event, field) of the field it streams.
HOSTED_STREAMS: dict[str, tuple[str, str, str]] = {
    "code_interpreter_call": (
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "code",
    ),
    "mcp_call": (
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "arguments",
    ),
}
# Progress events that may repeat (each carries one more piece).
HOSTED_REPEATS = frozenset(
    {
        "response.code_interpreter_call_code.delta",
        "response.image_generation_call.partial_image",
        "response.mcp_call_arguments.delta",
    }
)


def hosted_state(item_type: str, event_type: str) -> str:
    """The state a hosted item is in after `event_type` (`searching`, `code_delta` ...)."""
    return event_type.removeprefix(f"response.{item_type}").lstrip("._").replace(".", "_")


def hosted_last(item_type: str) -> tuple[str, ...]:
    """The events of a hosted item's last stage (`completed`, or `completed|failed`)."""
    stages = HOSTED_EVENTS[item_type]
    return tuple(stages[-1].split("|")) if stages else ()


HOSTED_ITEM_EVENTS = frozenset(
    event for stages in HOSTED_EVENTS.values() for stage in stages for event in stage.split("|")
)
ITEM_EVENTS |= HOSTED_ITEM_EVENTS


# Open Responses names raw reasoning text `response.reasoning.delta/.done`; OpenAI (and
# respgate) name the same events `response.reasoning_text.*`. Readers accept both.

# Open Responses names raw reasoning text `response.reasoning.delta/.done`; OpenAI names
# the same events `response.reasoning_text.*`. Readers accept both; the builder writes the
# names of the run's `ReasoningEvents` mode (README "Raw reasoning event names").
OPEN_RESPONSES_NAMES = {
    "response.reasoning.delta": "response.reasoning_text.delta",
    "response.reasoning.done": "response.reasoning_text.done",
}
ReasoningEvents = Literal["openai", "open_responses"]
REASONING_EVENTS: tuple[ReasoningEvents, ...] = ("openai", "open_responses")
# Mode -> the renames the builder applies to the events it writes (OpenAI's names are its own).
EVENT_NAMES: dict[str, dict[str, str]] = {
    "openai": {},
    "open_responses": {ours: theirs for theirs, ours in OPEN_RESPONSES_NAMES.items()},
}

# Item type -> content part types it may hold in `content`.
ITEM_PARTS: dict[str, tuple[str, ...]] = {
    "message": ("output_text", "refusal"),
    "reasoning": ("reasoning_text",),
    "compaction": (),  # added and done whole, nothing streamed between
    **{call_type: () for call_type in CALL_EVENTS},
}
ITEM_PARTS.update((hosted_type, ()) for hosted_type in HOSTED_EVENTS)


def _item_table() -> dict[tuple[str, str, str], str]:
    """(item type, item state, event type) -> next item state."""
    table: dict[tuple[str, str, str], str] = {}
    for item_type, parts in ITEM_PARTS.items():
        for part in parts:
            delta, done, _ = PART_EVENTS[part]
            table[(item_type, "open", f"response.content_part.added:{part}")] = f"part:{part}"
            table[(item_type, f"part:{part}", delta)] = f"part:{part}"
            table[(item_type, f"part:{part}", done)] = f"part_done:{part}"
            table[(item_type, f"part_done:{part}", "response.content_part.done")] = "open"
        if item_type not in CALL_EVENTS:
            table[(item_type, "open", "response.output_item.done")] = "closed"
    table[("message", "part:output_text", "response.output_text.annotation.added")] = (
        "part:output_text"
    )
    table[("reasoning", "open", "response.reasoning_summary_part.added")] = "summary"
    table[("reasoning", "summary", "response.reasoning_summary_text.delta")] = "summary"
    table[("reasoning", "summary", "response.reasoning_summary_text.done")] = "summary_done"
    table[("reasoning", "summary_done", "response.reasoning_summary_part.done")] = "open"
    for call_type, (delta, done, _) in CALL_EVENTS.items():
        table[(call_type, "open", delta)] = "open"
        table[(call_type, "open", done)] = "arguments_done"
        table[(call_type, "arguments_done", "response.output_item.done")] = "closed"
    for hosted_type in HOSTED_EVENTS:
        table.update(_hosted_table(hosted_type))
    return table


def _hosted_table(item_type: str) -> dict[tuple[str, str, str], str]:
    """A hosted item's transitions: forward through its stages (skipping allowed),
    a `.delta` stage only to itself or its `.done`; closed from any other state."""
    ranked = [
        (rank, event)
        for rank, stage in enumerate(HOSTED_EVENTS[item_type])
        for event in stage.split("|")
    ]
    table: dict[tuple[str, str, str], str] = {}
    for src_rank, src_event in [(-1, ""), *ranked]:
        src = hosted_state(item_type, src_event) if src_event else "open"
        if src_event.endswith(".delta"):
            done = src_event.removesuffix(".delta") + ".done"
            table[(item_type, src, src_event)] = src
            table[(item_type, src, done)] = hosted_state(item_type, done)
            continue
        for rank, event in ranked:
            if rank > src_rank or (event == src_event and event in HOSTED_REPEATS):
                table[(item_type, src, event)] = hosted_state(item_type, event)
        table[(item_type, src, "response.output_item.done")] = "closed"
    return table


ITEM_TRANSITIONS = _item_table()


class LifecycleError(Exception):
    """An event arrived in a state that does not allow it."""

    def __init__(self, event_type: str, state: str, scope: str) -> None:
        super().__init__(f"{event_type!r} is not allowed in {scope} state {state!r}")
        self.event_type = event_type
        self.state = state
        self.scope = scope


def item_key(event: dict) -> str:
    """The event name the item table is keyed by (part-typed for content_part.added)."""
    event_type = event["type"]
    if event_type == "response.content_part.added":
        return f"response.content_part.added:{event['part']['type']}"
    return OPEN_RESPONSES_NAMES.get(event_type, event_type)


def step_response(state: str, event_type: str) -> str:
    try:
        return RESPONSE_TRANSITIONS[(state, event_type)]
    except KeyError:
        raise LifecycleError(event_type, state, "response") from None


def step_item(item_type: str, state: str, key: str) -> str:
    try:
        return ITEM_TRANSITIONS[(item_type, state, key)]
    except KeyError:
        raise LifecycleError(key, state, f"{item_type} item") from None


def mermaid() -> str:
    """A Mermaid state diagram of both machines, drawn from the tables above."""
    lines = ["stateDiagram-v2", "    [*] --> start"]
    for (src, event), dst in RESPONSE_TRANSITIONS.items():
        lines.append(f"    {src} --> {dst}: {event}")
    lines.append("    closed --> [*]")
    for item_type in ITEM_PARTS:
        lines.append(f"    state {item_type}_item {{")
        lines.append(f"        [*] --> {item_type}_open")
        for (kind, src, event), dst in ITEM_TRANSITIONS.items():
            if kind != item_type:
                continue
            a = f"{item_type}_{src}".replace(":", "_")
            b = f"{item_type}_{dst}".replace(":", "_")
            lines.append(f"        {a} --> {b}: {event.removeprefix('response.')}")
        lines.append(f"        {item_type}_closed --> [*]")
        lines.append("    }")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m respgate.protocol.lifecycle > diagram for the README
    print(mermaid())
