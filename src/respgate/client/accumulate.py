"""Rebuild the final Response from stream events alone, and check it against
the snapshot the terminal event carries.

Streamed values (part text and refusals, annotations, reasoning summary and raw
text, tool-call arguments) come from the delta and `*.added` events; every
other item field (`status`, `encrypted_content`, ...) comes from
`response.output_item.done`. Where a `*.done` event or the terminal snapshot
disagrees with what the deltas built, the difference is recorded in
`mismatches` as `<path>: <what>`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..protocol.lifecycle import CALL_EVENTS, HOSTED_STREAMS
from . import events as ev

Json = dict[str, Any]

# Item and part keys whose values the stream builds up event by event.
# Tool call item type -> the field its deltas stream into (`arguments`, `input`).
CALL_FIELDS = {call_type: name for call_type, (_, _, name) in CALL_EVENTS.items()}
# Item type -> the field of the item its delta events stream (tool calls, hosted items).
ITEM_FIELDS = {**CALL_FIELDS, **{kind: name for kind, (_, _, name) in HOSTED_STREAMS.items()}}
STREAMED_KEYS = frozenset(
    {"content", "summary", "text", "refusal", "annotations", *ITEM_FIELDS.values()}
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A `function_call` output item, with its `arguments` parsed (None if not valid JSON)."""

    id: str
    call_id: str
    name: str
    arguments: str
    parsed_arguments: Any


@dataclass(slots=True)
class Result:
    """The outcome of one response.

    `response` is the server's final snapshot (the terminal event's, or the body of a
    non-streaming reply); `rebuilt` is the same Response rebuilt from the events
    (None when there was no stream); `mismatches` lists where they disagree.
    `status` is `completed` or `incomplete` (see `incomplete_details`); a failed
    response raises `ResponseFailedError` instead of returning a Result.
    """

    response: Json
    rebuilt: Json | None = None
    mismatches: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.response.get("id", "")

    @property
    def status(self) -> str | None:
        return self.response.get("status")

    @property
    def incomplete_details(self) -> Json | None:
        return self.response.get("incomplete_details")

    @property
    def usage(self) -> Json | None:
        return self.response.get("usage")

    @property
    def output(self) -> list[Json]:
        return self.response.get("output") or []

    def _texts(self, item_type: str, container: str, part_type: str, key: str) -> list[str]:
        return [
            part.get(key, "")
            for item in self.output
            if item.get("type") == item_type
            for part in item.get(container) or []
            if part.get("type") == part_type
        ]

    @property
    def output_text(self) -> str:
        """All `output_text` parts of all message items, concatenated."""
        return "".join(self._texts("message", "content", "output_text", "text"))

    @property
    def refusal(self) -> str:
        return "".join(self._texts("message", "content", "refusal", "refusal"))

    @property
    def reasoning_summary(self) -> str:
        """All reasoning summary parts, separated by blank lines."""
        return "\n\n".join(self._texts("reasoning", "summary", "summary_text", "text"))

    @property
    def reasoning_text(self) -> str:
        return "".join(self._texts("reasoning", "content", "reasoning_text", "text"))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(
                item.get("id", ""),
                item.get("call_id", ""),
                item.get("name", ""),
                item.get("arguments", ""),
                parse_arguments(item.get("arguments", "")),
            )
            for item in self.output
            if item.get("type") == "function_call"
        ]


def parse_arguments(arguments: str) -> Any:
    """Tool-call arguments as JSON; `{}` for an empty string, None if not valid JSON."""
    if not arguments:
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None


class Accumulator:
    """Feed events with `add()`; `rebuilt()` is the Response as of now.

    Sans-IO and lenient: an event that refers to an item or part never added is
    recorded in `mismatches` and otherwise ignored (the strict checker is
    `respgate.protocol.validate`).
    """

    def __init__(self) -> None:
        self.response: Json | None = None  # latest lifecycle snapshot
        self.terminal: ev.ResponseCompleted | ev.ResponseIncomplete | ev.ResponseFailed | None = (
            None
        )
        self.error: ev.ErrorEvent | None = None
        self.mismatches: list[str] = []
        self._items: dict[int, Json] = {}  # output_index -> item being rebuilt
        self._chunks: dict[tuple[int, str, int, str], list[str]] = {}  # streamed strings
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.ResponseCreated: self._on_response,
            ev.ResponseQueued: self._on_response,
            ev.ResponseInProgress: self._on_response,
            ev.ResponseCompleted: self._on_terminal,
            ev.ResponseIncomplete: self._on_terminal,
            ev.ResponseFailed: self._on_terminal,
            ev.ErrorEvent: self._on_error,
            ev.OutputItemAdded: self._on_item_added,
            ev.OutputItemDone: self._on_item_done,
            ev.ContentPartAdded: self._on_part_added,
            ev.ContentPartDone: self._on_part_done,
            ev.OutputTextDelta: self._on_delta,
            ev.RefusalDelta: self._on_delta,
            ev.ReasoningTextDelta: self._on_delta,
            ev.ReasoningSummaryTextDelta: self._on_delta,
            ev.FunctionCallArgumentsDelta: self._on_delta,
            ev.CustomToolCallInputDelta: self._on_delta,
            ev.OutputTextDone: self._on_text_done,
            ev.RefusalDone: self._on_text_done,
            ev.ReasoningTextDone: self._on_text_done,
            ev.ReasoningSummaryTextDone: self._on_text_done,
            ev.FunctionCallArgumentsDone: self._on_text_done,
            ev.CustomToolCallInputDone: self._on_text_done,
            ev.McpCallArgumentsDelta: self._on_delta,
            ev.McpCallArgumentsDone: self._on_text_done,
            ev.CodeInterpreterCallCodeDelta: self._on_delta,
            ev.CodeInterpreterCallCodeDone: self._on_text_done,
            ev.OutputTextAnnotationAdded: self._on_annotation,
            ev.ReasoningSummaryPartAdded: self._on_part_added,
            ev.ReasoningSummaryPartDone: self._on_part_done,
        }

    def add(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def item(self, output_index: int) -> Json | None:
        """The item at `output_index` as rebuilt so far (streamed text joined)."""
        item = self._items.get(output_index)
        if item is not None:
            self._flush(output_index)
        return item

    def rebuilt(self) -> Json | None:
        """The Response rebuilt from the events: the latest snapshot's fields, the rebuilt output."""
        base = self.terminal.response if self.terminal is not None else self.response
        if base is None:
            return None
        response = dict(base)
        response["output"] = [self.item(i) for i in sorted(self._items)]
        return response

    def result(self) -> Result:
        """The Result once a terminal event arrived: snapshot, rebuilt copy and mismatches."""
        assert self.terminal is not None
        rebuilt = self.rebuilt()
        assert rebuilt is not None
        snapshot = self.terminal.response
        mismatches = list(self.mismatches)
        if "output" in snapshot:
            _diff(rebuilt["output"], snapshot["output"], "response.output", mismatches)
        return Result(snapshot if "output" in snapshot else rebuilt, rebuilt, mismatches)

    # ------------------------------------------------------------ handlers

    def _on_response(self, event: ev.ResponseCreated) -> None:
        self.response = event.response

    def _on_terminal(self, event: ev.ResponseCompleted) -> None:
        self.response = event.response
        self.terminal = event

    def _on_error(self, event: ev.ErrorEvent) -> None:
        self.error = event

    def _on_item_added(self, event: ev.OutputItemAdded) -> None:
        item = copy.deepcopy(event.item)
        streamed = ITEM_FIELDS.get(item.get("type"))
        if streamed is not None:
            self._chunks[(event.output_index, "", 0, streamed)] = [item.get(streamed) or ""]
        self._items[event.output_index] = item

    def _on_item_done(self, event: ev.OutputItemDone) -> None:
        item = self.item(event.output_index)
        if item is None:
            self.mismatches.append(f"output[{event.output_index}]: done before added")
            return
        done = event.item
        for key in ("type", "id", "call_id"):
            if item.get(key) != done.get(key):
                self.mismatches.append(
                    f"output[{event.output_index}].{key}: added {item.get(key)!r}, done {done.get(key)!r}"
                )
        _diff(
            _streamed(item),
            _streamed(done),
            f"output[{event.output_index}] (output_item.done)",
            self.mismatches,
        )
        self._items[event.output_index] = _settle(item, done)

    @staticmethod
    def _container(event: Any) -> tuple[str, int]:
        """Where an item event's text lives: ("content"|"summary", index), or ("", 0) for the item."""
        if isinstance(event, ev._SummaryEvent):
            return "summary", event.summary_index
        if isinstance(event, ev._ContentEvent):
            return "content", event.content_index
        return "", 0

    def _part(self, event: Any, container: str, index: int) -> Json | None:
        item = self._items.get(event.output_index)
        parts = item.get(container) if item is not None else None
        if not isinstance(parts, list) or not 0 <= index < len(parts):
            self.mismatches.append(
                f"{_where(event.output_index, container, index)}: {event.type} before its part was added"
            )
            return None
        return parts[index]

    def _on_part_added(self, event: ev.ContentPartAdded) -> None:
        container, index = self._container(event)
        item = self._items.get(event.output_index)
        if item is None:
            self.mismatches.append(
                f"output[{event.output_index}]: {event.type} before the item was added"
            )
            return
        parts = item.setdefault(container, [])
        part = copy.deepcopy(event.part)
        if index == len(parts):
            parts.append(part)
        elif 0 <= index < len(parts):
            self.mismatches.append(f"{_where(event.output_index, container, index)}: added twice")
            parts[index] = part
        else:
            self.mismatches.append(
                f"{_where(event.output_index, container, index)}: index skips {len(parts)}"
            )
            return
        key = _TEXT_KEY.get(part.get("type"))
        if key is not None:
            self._chunks[(event.output_index, container, index, key)] = [part.get(key) or ""]

    def _on_part_done(self, event: ev.ContentPartDone) -> None:
        container, index = self._container(event)
        self._flush(event.output_index)
        part = self._part(event, container, index)
        if part is None:
            return
        where = f"{_where(event.output_index, container, index)} ({event.type})"
        _diff(_streamed(part), _streamed(event.part), where, self.mismatches)
        settled = _settle(part, event.part)
        self._items[event.output_index][container][index] = settled

    def _on_delta(self, event: Any) -> None:
        container, index = self._container(event)
        chunks = self._chunks.get((event.output_index, container, index, _DELTA_KEY[type(event)]))
        if chunks is None:
            self.mismatches.append(
                f"{_where(event.output_index, container, index)}: {event.type} before its part was added"
            )
            return
        chunks.append(event.delta)

    def _on_text_done(self, event: Any) -> None:
        container, index = self._container(event)
        key = _DELTA_KEY[type(event)]
        chunks = self._chunks.get((event.output_index, container, index, key))
        if chunks is None:
            self.mismatches.append(
                f"{_where(event.output_index, container, index)}: {event.type} before its part was added"
            )
            return
        streamed = "".join(chunks)
        chunks[:] = [streamed]
        done = getattr(event, key)
        if streamed != done:
            self.mismatches.append(
                f"{_where(event.output_index, container, index)}.{key}: deltas give {streamed!r}, {event.type} says {done!r}"
            )

    def _on_annotation(self, event: ev.OutputTextAnnotationAdded) -> None:
        part = self._part(event, "content", event.content_index)
        if part is None:
            return
        annotations = part.setdefault("annotations", [])
        if event.annotation_index != len(annotations):
            self.mismatches.append(
                f"output[{event.output_index}].content[{event.content_index}].annotations[{event.annotation_index}]: expected index {len(annotations)}"
            )
        annotations.append(copy.deepcopy(event.annotation))

    def _flush(self, output_index: int) -> None:
        """Write the joined streamed strings of one item into its dicts."""
        item = self._items[output_index]
        for (i, container, index, key), chunks in self._chunks.items():
            if i != output_index:
                continue
            if len(chunks) > 1:
                chunks[:] = ["".join(chunks)]
            target = item[container][index] if container else item
            target[key] = chunks[0]


def _where(output_index: int, container: str, index: int) -> str:
    """`output[i]`, or `output[i].content[j]` / `output[i].summary[j]` for a part."""
    return (
        f"output[{output_index}].{container}[{index}]" if container else f"output[{output_index}]"
    )


# Part type -> the key its text streams into.
_TEXT_KEY = {
    "output_text": "text",
    "refusal": "refusal",
    "reasoning_text": "text",
    "summary_text": "text",
}

# Delta or done event -> the key it streams into.
_DELTA_KEY: dict[type, str] = {
    ev.OutputTextDelta: "text",
    ev.OutputTextDone: "text",
    ev.RefusalDelta: "refusal",
    ev.RefusalDone: "refusal",
    ev.ReasoningTextDelta: "text",
    ev.ReasoningTextDone: "text",
    ev.ReasoningSummaryTextDelta: "text",
    ev.ReasoningSummaryTextDone: "text",
    ev.FunctionCallArgumentsDelta: "arguments",
    ev.FunctionCallArgumentsDone: "arguments",
    ev.CustomToolCallInputDelta: "input",
    ev.CustomToolCallInputDone: "input",
    ev.McpCallArgumentsDelta: "arguments",
    ev.McpCallArgumentsDone: "arguments",
    ev.CodeInterpreterCallCodeDelta: "code",
    ev.CodeInterpreterCallCodeDone: "code",
}


def _streamed(obj: Json) -> Json:
    """Only the streamed keys of an item or part (parts reduced the same way)."""
    out: Json = {}
    for key in STREAMED_KEYS & obj.keys():
        value = obj[key]
        if key in ("content", "summary") and isinstance(value, list):
            value = [_streamed(p) if isinstance(p, dict) else p for p in value]
        out[key] = value
    return out


def _settle(streamed: Json, done: Json) -> Json:
    """`done` with its streamed keys replaced by the values the stream built."""
    out = dict(done)
    for key in STREAMED_KEYS & streamed.keys():
        value = streamed[key]
        if key in ("content", "summary") and isinstance(value, list):
            done_parts = done.get(key) if isinstance(done.get(key), list) else []
            value = [
                _settle(p, done_parts[i])
                if i < len(done_parts) and isinstance(done_parts[i], dict)
                else p
                for i, p in enumerate(value)
            ]
        out[key] = value
    return out


def _diff(ours: Any, theirs: Any, path: str, out: list[str]) -> None:
    """Append `<path>: ...` for every place where two JSON values differ."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(ours.keys() | theirs.keys()):
            if key not in theirs:
                out.append(f"{path}.{key}: missing from the snapshot")
            elif key not in ours:
                out.append(f"{path}.{key}: not in the stream")
            else:
                _diff(ours[key], theirs[key], f"{path}.{key}", out)
    elif isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            out.append(f"{path}: {len(ours)} entries in the stream, {len(theirs)} in the snapshot")
        for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            _diff(a, b, f"{path}[{i}]", out)
    elif ours != theirs or type(ours) is not type(theirs):
        out.append(f"{path}: stream {ours!r}, snapshot {theirs!r}")
