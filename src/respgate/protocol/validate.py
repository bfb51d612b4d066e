"""The strict stream checker: feed it events, get every violation.

It steps the same lifecycle tables as the `ResponseBuilder`
(`lifecycle.py`) and adds the checks a table cannot express: sequence
numbers, indices, ids stable from `added` to the final snapshot, deltas that
concatenate to the done text, exactly one terminal event, `[DONE]` last, and a
complete Response object. Sans-IO; `respgate check` and the test suite both
use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .lifecycle import (
    CALL_EVENTS,
    HOSTED_EVENTS,
    HOSTED_ITEM_EVENTS,
    HOSTED_STREAMS,
    ITEM_EVENTS,
    ITEM_PARTS,
    ITEM_TRANSITIONS,
    OPEN_RESPONSES_NAMES,
    PART_EVENTS,
    TERMINAL_EVENTS,
    LifecycleError,
    hosted_last,
    hosted_state,
    item_key,
    step_item,
    step_response,
)

DONE = "[DONE]"
# Response states an `error` event may come from.
ERROR_FROM = frozenset({"created", "queued", "in_progress"})

# Every key of the spec's ResponseResource (all required; nullable ones may be null).
RESPONSE_FIELDS = (
    "id", "object", "created_at", "completed_at", "status", "incomplete_details", "model",
    "previous_response_id", "instructions", "output", "error", "tools", "tool_choice",
    "truncation", "parallel_tool_calls", "text", "top_p", "presence_penalty",
    "frequency_penalty", "top_logprobs", "temperature", "reasoning", "usage",
    "max_output_tokens", "max_tool_calls", "store", "background", "service_tier",
    "metadata", "safety_identifier", "prompt_cache_key",
)  # fmt: skip
NON_NULL_NUMBERS = ("top_p", "presence_penalty", "frequency_penalty", "top_logprobs", "temperature")
# The Response status each terminal event may carry: a background response cancelled
# mid-stream ends with `response.failed` whose Response keeps status `cancelled`.
TERMINAL_STATUS = {
    "response.completed": ("completed",),
    "response.incomplete": ("incomplete",),
    "response.failed": ("failed", "cancelled"),
}

RULES = {
    "json": "every event is one JSON object with a string `type`",
    "sequence_number": "sequence_number present and increasing by one",
    "first_event": "the stream starts with response.created (output empty)",
    "lifecycle": "events follow the item and part lifecycle",
    "output_index": "output_index counts 0, 1, 2 ... and matches the open item",
    "item_id": "item ids are stable from added through done and the final snapshot",
    "content_index": "content_index / summary_index match the open part",
    "added_item": "output_item.added carries a valid item with zero values",
    "delta_concat": "deltas concatenate to the done text, part and item",
    "response_id": "the response id is the same in every lifecycle event",
    "response_object": "every Response object has every ResponseResource field",
    "terminal": "exactly one terminal event, matching the response status",
    "snapshot": "the terminal output equals the items from output_item.done",
    "error_event": "an error event carries type, code, message and param, then response.failed",
    "done": "the stream ends with data: [DONE] and nothing follows it",
}


@dataclass(slots=True)
class Violation:
    rule: str
    message: str
    index: int  # position of the offending event in the stream (-1: end of stream)
    event_type: str | None = None

    def __str__(self) -> str:
        where = f"event #{self.index} ({self.event_type})" if self.index >= 0 else "end of stream"
        return f"[{self.rule}] {where}: {self.message}"


# MCP item type -> its string fields a done item must have (besides id and type).
MCP_FIELDS: dict[str, tuple[str, ...]] = {
    "mcp_list_tools": ("server_label",),
    "mcp_call": ("server_label", "name", "arguments"),
    "mcp_approval_request": ("server_label", "name", "arguments"),
}


@dataclass(slots=True)
class _Open:
    """The item being checked."""

    item_type: str
    item_id: str | None
    output_index: int
    state: str = "open"
    texts: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    part_counts: dict[str, int] = field(default_factory=dict)  # parts opened, per kind
    arguments: list[str] = field(default_factory=list)  # also a hosted item's streamed field
    streamed: bool = False  # a hosted item's streamed field was seen
    annotations: dict[int, list[Any]] = field(default_factory=dict)  # content_index -> added


class StreamChecker:
    """Feed events (dicts, or the string `"[DONE]"`) in order; then `close()`."""

    def __init__(
        self, *, require_done: bool = True, expect_start: bool = True, websocket: bool = False
    ) -> None:
        self.violations: list[Violation] = []
        self.require_done = require_done
        # A WebSocket turn sends one terminal message: `response.failed` without the
        # `error` event before it (the Response's `error` carries the failure).
        self.websocket = websocket
        self._expect_start = expect_start
        self._index = -1
        self._seq: int | None = None
        self._state = "start" if expect_start else None
        self._response_id: str | None = None
        self._item: _Open | None = None
        self._items_added = 0
        self._done_items: list[dict[str, Any]] = []
        self._terminals = 0
        self._saw_done = False
        self.final_response: dict[str, Any] | None = None

    # ------------------------------------------------------------ public API

    def feed(self, event: dict[str, Any] | str) -> None:
        self._index += 1
        if self._saw_done:
            self._flag("done", "event after [DONE]", None)
            return
        if event == DONE:
            self._saw_done = True
            if self._terminals == 0:
                self._flag("terminal", "[DONE] before any terminal event", DONE)
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._flag("json", f"not an event object: {str(event)[:80]!r}", None)
            return
        if event["type"] in OPEN_RESPONSES_NAMES:  # the spec's name for the same event
            event = {**event, "type": OPEN_RESPONSES_NAMES[event["type"]]}
        self._check_event(event)

    def close(self) -> list[Violation]:
        self._index = -1
        if self._terminals == 0:
            self._flag("terminal", "the stream ended without a terminal event", None)
        if self.require_done and not self._saw_done:
            self._flag("done", "the stream did not end with data: [DONE]", None)
        return self.violations

    # ------------------------------------------------------------ checks

    def _flag(self, rule: str, message: str, event_type: str | None) -> None:
        self.violations.append(Violation(rule, message, self._index, event_type))

    def _check_event(self, ev: dict[str, Any]) -> None:
        t = ev["type"]
        self._check_sequence(ev)
        if self._terminals and t not in TERMINAL_EVENTS:
            self._flag("terminal", "event after the terminal event", t)
        if self._index == 0 and self._expect_start and t != "response.created":
            self._flag("first_event", "the first event must be response.created", t)
        if "response" in ev and t.startswith("response.") and t not in ITEM_EVENTS:
            self._check_response_event(ev)
        if t == "error":
            self._check_error(ev)
        self._step(ev)

    def _check_sequence(self, ev: dict[str, Any]) -> None:
        seq = ev.get("sequence_number")
        if not isinstance(seq, int) or isinstance(seq, bool):
            self._flag("sequence_number", "missing or not an integer", ev["type"])
            return
        expected = (0 if self._expect_start else seq) if self._seq is None else self._seq + 1
        if seq != expected:
            self._flag("sequence_number", f"expected {expected}, got {seq}", ev["type"])
        self._seq = seq

    def _check_response_event(self, ev: dict[str, Any]) -> None:
        t = ev["type"]
        resp = ev["response"]
        if not isinstance(resp, dict):
            self._flag("response_object", "`response` is not an object", t)
            return
        missing = [k for k in RESPONSE_FIELDS if k not in resp]
        if missing:
            self._flag("response_object", f"missing fields {missing}", t)
        nulls = [k for k in NON_NULL_NUMBERS if k in resp and not isinstance(resp[k], int | float)]
        if nulls:
            self._flag("response_object", f"fields must be numbers: {nulls}", t)
        if not isinstance(resp.get("created_at"), int):
            self._flag("response_object", "created_at must be an integer", t)
        if self._response_id is None:
            self._response_id = resp.get("id")
        elif resp.get("id") != self._response_id:
            self._flag(
                "response_id", f"id changed from {self._response_id!r} to {resp.get('id')!r}", t
            )
        if t == "response.created" and resp.get("output") != []:
            self._flag("first_event", "response.created must carry output: []", t)
        if t in TERMINAL_EVENTS:
            self._check_terminal(ev, resp)

    def _check_terminal(self, ev: dict[str, Any], resp: dict[str, Any]) -> None:
        t = ev["type"]
        self._terminals += 1
        if self._terminals > 1:
            self._flag("terminal", "more than one terminal event", t)
        self.final_response = resp
        if resp.get("status") not in TERMINAL_STATUS[t]:
            self._flag("terminal", f"status {resp.get('status')!r} in {t}", t)
        if t == "response.incomplete" and not (resp.get("incomplete_details") or {}).get("reason"):
            self._flag("terminal", "response.incomplete without incomplete_details.reason", t)
        failed = resp.get("status") == "failed"
        if t == "response.failed" and failed and not (resp.get("error") or {}).get("code"):
            self._flag("terminal", "response.failed without error.code", t)
        if t == "response.completed" and resp.get("usage") is not None:
            usage = resp["usage"]
            for key in ("input_tokens_details", "output_tokens_details", "total_tokens"):
                if key not in usage:
                    self._flag("response_object", f"usage lacks {key}", t)
        output = resp.get("output")
        if output != self._done_items:
            self._flag("snapshot", "terminal output differs from the output_item.done items", t)
        statuses = [i.get("status") for i in self._done_items]
        if "incomplete" in statuses[:-1]:
            self._flag("snapshot", "an incomplete item must be the last item", t)

    def _check_error(self, ev: dict[str, Any]) -> None:
        nested = ev.get("error")
        for key in ("type", "code", "message", "param"):
            if not isinstance(nested, dict) or key not in nested:
                self._flag("error_event", f"error.{key} missing", "error")
        for key in ("code", "message"):
            if key not in ev:
                self._flag("error_event", f"flat `{key}` missing", "error")

    # ------------------------------------------------------------ lifecycle

    def _step(self, ev: dict[str, Any]) -> None:
        t = ev["type"]
        if self._state is None:  # a resumed stream: adopt the state of the first event
            self._state = "in_progress" if t != "response.output_item.done" else "item"
        if t in ITEM_EVENTS:
            self._step_item(ev)
            return
        if self.websocket and t == "response.failed" and self._state in ERROR_FROM:
            self._state = "errored"  # the error event left out
        try:
            self._state = step_response(self._state, t)
        except LifecycleError as exc:
            self._flag("lifecycle", str(exc), t)
            self._state = {"response.output_item.added": "item", "response.output_item.done": "in_progress",
                           "error": "errored", "[DONE]": "closed"}.get(t, "ended" if t in TERMINAL_EVENTS else self._state)  # fmt: skip
        if t == "response.output_item.added":
            self._item_added(ev)
        elif t == "response.output_item.done":
            self._item_done(ev)

    def _item_added(self, ev: dict[str, Any]) -> None:
        item = ev.get("item") or {}
        item_type = item.get("type")
        if ev.get("output_index") != self._items_added:
            self._flag(
                "output_index",
                f"expected {self._items_added}, got {ev.get('output_index')}",
                ev["type"],
            )
        self._items_added += 1
        if not item.get("id"):
            self._flag("added_item", "item without id", ev["type"])
        # (not every hosted-tool item type has a status)
        default = "in_progress" if item_type in HOSTED_EVENTS else None
        if item.get("status", default) != "in_progress":
            self._flag("added_item", "added item must have status in_progress", ev["type"])
        if item_type == "message" and (item.get("content") != [] or not item.get("role")):
            self._flag("added_item", "message must be added with role and content: []", ev["type"])
        if item_type in CALL_EVENTS and (
            item.get(CALL_EVENTS[item_type][2]) != ""
            or not item.get("name")
            or not item.get("call_id")
        ):
            field = CALL_EVENTS[item_type][2]
            self._flag(
                "added_item",
                f"{item_type} must be added with name, call_id, {field} ''",
                ev["type"],
            )
        if item_type == "reasoning" and item.get("summary") != []:
            self._flag("added_item", "reasoning must be added with summary: []", ev["type"])
        self._item = _Open(str(item_type), item.get("id"), ev.get("output_index", -1))

    def _item_done(self, ev: dict[str, Any]) -> None:
        item = ev.get("item") or {}
        self._done_items.append(item)
        cur = self._item
        self._item = None
        if cur is None:
            return
        if cur.item_type in CALL_EVENTS and cur.state != "arguments_done":
            done_type = CALL_EVENTS[cur.item_type][1]
            self._flag("lifecycle", f"{cur.item_type} done without {done_type}", ev["type"])
        elif cur.item_type in ITEM_PARTS and (
            (cur.item_type, cur.state, ev["type"]) not in ITEM_TRANSITIONS
        ):
            self._flag(
                "lifecycle",
                f"output_item.done while the item is in state {cur.state!r}",
                ev["type"],
            )
        if cur.item_type in HOSTED_EVENTS:
            self._check_hosted_done(cur, item, ev["type"])
        if ev.get("output_index") != cur.output_index:
            self._flag(
                "output_index", "output_item.done output_index differs from added", ev["type"]
            )
        if item.get("id") != cur.item_id or item.get("type") != cur.item_type:
            self._flag("item_id", "output_item.done id/type differ from added", ev["type"])
        if cur.item_type in CALL_EVENTS and item.get(CALL_EVENTS[cur.item_type][2]) != "".join(
            cur.arguments
        ):
            self._flag(
                "delta_concat", "item arguments differ from the streamed arguments", ev["type"]
            )
        for (kind, idx), chunks in cur.texts.items():
            parts = item.get("summary" if kind == "summary" else "content") or []
            if idx >= len(parts):
                self._flag("snapshot", f"done item lacks {kind} part {idx}", ev["type"])
                continue
            part = parts[idx]
            text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
            if text != "".join(chunks):
                self._flag(
                    "delta_concat",
                    f"done item {kind} part {idx} differs from its deltas",
                    ev["type"],
                )

    def _check_hosted_done(self, cur: _Open, item: dict[str, Any], event_type: str) -> None:
        """A hosted item closed `completed` (or `failed`, given a failed event) reached its
        last stage; its streamed field equals its deltas."""
        last = hosted_last(cur.item_type)
        status = item.get("status")
        endings = {e.rsplit(".", 1)[1]: hosted_state(cur.item_type, e) for e in last}
        if status in endings and cur.state not in endings.values():
            self._flag(
                "lifecycle", f"{cur.item_type} {status} without its {status} event", event_type
            )
        stream = HOSTED_STREAMS.get(cur.item_type)
        if stream is not None and cur.streamed and item.get(stream[2]) != "".join(cur.arguments):
            self._flag("delta_concat", f"item {stream[2]} differs from its deltas", event_type)
        if cur.item_type in MCP_FIELDS:
            self._check_mcp_done(cur, item, event_type)

    def _check_mcp_done(self, cur: _Open, item: dict[str, Any], event_type: str) -> None:
        """An MCP item has its fields, and one that ended with its `.completed` event
        carries no `error`."""
        missing = [f for f in MCP_FIELDS[cur.item_type] if not isinstance(item.get(f), str)]
        if cur.item_type == "mcp_list_tools" and not isinstance(item.get("tools"), list):
            missing.append("tools")
        if missing:
            self._flag("done_item", f"{cur.item_type} without {', '.join(missing)}", event_type)
        completed = f"response.{cur.item_type}.completed"
        if cur.state == hosted_state(cur.item_type, completed) and item.get("error"):
            self._flag("done_item", f"{cur.item_type} completed with an error", event_type)

    def _step_item(self, ev: dict[str, Any]) -> None:
        t = ev["type"]
        cur = self._item
        if cur is None or self._state != "item":
            self._flag("lifecycle", "item event with no open item", t)
            return
        if ev.get("output_index") != cur.output_index:
            self._flag(
                "output_index", f"expected {cur.output_index}, got {ev.get('output_index')}", t
            )
        if ev.get("item_id") != cur.item_id:
            self._flag("item_id", f"expected {cur.item_id!r}, got {ev.get('item_id')!r}", t)
        try:
            cur.state = step_item(cur.item_type, cur.state, item_key(ev))
        except LifecycleError as exc:
            self._flag("lifecycle", str(exc), t)
        self._check_indices_and_text(cur, ev)

    def _check_indices_and_text(self, cur: _Open, ev: dict[str, Any]) -> None:
        t = ev["type"]
        if cur.item_type in CALL_EVENTS:
            delta_type, done_type, field = CALL_EVENTS[cur.item_type]
            if t == delta_type:
                cur.arguments.append(ev.get("delta", ""))
            elif t == done_type and ev.get(field) != "".join(cur.arguments):
                self._flag("delta_concat", f"{done_type} differs from the deltas", t)
            return
        if t in HOSTED_ITEM_EVENTS:
            stream = HOSTED_STREAMS.get(cur.item_type)
            if stream is not None and t == stream[0]:
                cur.arguments.append(ev.get("delta", ""))
                cur.streamed = True
            elif stream is not None and t == stream[1]:
                if cur.streamed and ev.get(stream[2]) != "".join(cur.arguments):
                    self._flag("delta_concat", f"{t} differs from the deltas", t)
                cur.arguments = [str(ev.get(stream[2], ""))]
                cur.streamed = True
            return
        summary = t.startswith("response.reasoning_summary")
        kind, key = ("summary", "summary_index") if summary else ("content", "content_index")
        opened = cur.part_counts.get(kind, 0)
        if t.endswith("part.added"):
            expected = opened
            cur.part_counts[kind] = opened + 1
        else:
            expected = opened - 1
        idx = ev.get(key)
        if idx != expected:
            self._flag("content_index", f"{key} expected {expected}, got {idx}", t)
            return
        chunks = cur.texts.setdefault((kind, idx), [])
        if t == "response.output_text.annotation.added":
            added = cur.annotations.setdefault(idx, [])
            if ev.get("annotation_index") != len(added):
                self._flag(
                    "content_index",
                    f"annotation_index expected {len(added)}, got {ev.get('annotation_index')}",
                    t,
                )
            added.append(ev.get("annotation"))
            return
        if t.endswith(".delta"):
            chunks.append(ev.get("delta", ""))
        elif t in _DONE_TEXT_FIELD:
            if ev.get(_DONE_TEXT_FIELD[t]) != "".join(chunks):
                self._flag("delta_concat", f"{t} text differs from its deltas", t)
        elif t.endswith("part.done") or t.endswith("part.added"):
            part = ev.get("part") or {}
            text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
            if text != "".join(chunks):
                self._flag("delta_concat", f"{t} part text differs from its deltas", t)
            annotated = t.endswith("part.done") and part.get("type") == "output_text"
            if annotated and part.get("annotations") != cur.annotations.get(idx, []):
                self._flag("delta_concat", f"{t} annotations differ from those added", t)


_DONE_TEXT_FIELD = {done: fieldname for _, done, fieldname in PART_EVENTS.values()}
_DONE_TEXT_FIELD["response.reasoning_summary_text.done"] = "text"


def check_events(
    events: Iterable[dict[str, Any] | str], *, require_done: bool = True, websocket: bool = False
) -> list[Violation]:
    """Check a whole stream; returns every violation (empty: the stream is correct).
    `websocket`: one WebSocket turn (`response.failed` may come without `error`)."""
    checker = StreamChecker(require_done=require_done, websocket=websocket)
    for event in events:
        checker.feed(event)
    return checker.close()
