"""`ResponseBuilder`: neutral signals in, Responses stream events out.

This is the only place that writes wire events. It assigns `sequence_number`,
item ids, `output_index`, `content_index` and `summary_index`, keeps the
Response snapshot, and steps the lifecycle tables in `lifecycle.py` for every
event it emits, so it cannot emit an event out of order. Sans-IO: no clock
except the one passed in, no asyncio.

Item policy: at most one output item is open at a time (the spec's lifecycle
is sequential). A tool call whose fragments arrive while another tool call is
open is buffered and emitted whole when the open call ends, so tool calls
interleaved by index are never mis-assigned. Signals of another kind close the
open item first. `Finish` and `Failure` close everything that is open; the
last open item of an incomplete response ends `incomplete`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from .errors import response_error
from .ids import new_id
from .lifecycle import (
    CALL_EVENTS,
    EVENT_NAMES,
    HOSTED_EVENTS,
    HOSTED_ITEM_EVENTS,
    HOSTED_STREAMS,
    ITEM_EVENTS,
    ITEM_TRANSITIONS,
    PART_EVENTS,
    ReasoningEvents,
    hosted_last,
    hosted_state,
    item_key,
    step_item,
    step_response,
)
from .response import usage_object
from .signals import (
    Annotation,
    Compaction,
    Failure,
    Finish,
    HostedItem,
    ReasoningDelta,
    ReasoningOpaque,
    RefusalDelta,
    Signal,
    TextDelta,
    ToolCallDelta,
    Usage,
)

Event = dict[str, Any]


class _Part:
    __slots__ = ("annotations", "chunks", "logprobs", "open", "type")

    def __init__(self, part_type: str) -> None:
        self.type = part_type
        self.chunks: list[str] = []
        self.open = True
        self.annotations: list[dict[str, Any]] = []
        self.logprobs: list[dict[str, Any]] = []

    def text(self) -> str:
        if len(self.chunks) > 1:
            self.chunks = ["".join(self.chunks)]
        return self.chunks[0] if self.chunks else ""

    def wire(self) -> dict[str, Any]:
        if self.type == "output_text":
            return {
                "type": "output_text",
                "text": self.text(),
                "annotations": list(self.annotations),
                "logprobs": list(self.logprobs),
            }
        if self.type == "refusal":
            return {"type": "refusal", "refusal": self.text()}
        return {"type": self.type, "text": self.text()}


class _Item:
    __slots__ = (
        "call",
        "content",
        "encrypted_content",
        "hosted",
        "id",
        "output_index",
        "state",
        "stream",
        "summary",
        "type",
    )

    def __init__(self, item_type: str, item_id: str, output_index: int) -> None:
        self.type = item_type
        self.id = item_id
        self.output_index = output_index
        self.state = "open"
        self.content: list[_Part] = []
        self.summary: list[_Part] = []
        self.call: _Call | None = None
        self.encrypted_content: str | None = None
        self.hosted: dict[str, Any] | None = None  # a hosted-tool item, as the upstream has it
        self.stream: list[str] = []  # the field a hosted item streams (HOSTED_STREAMS)

    @classmethod
    def resumed(cls, added: dict[str, Any], output_index: int) -> _Item:
        """The item an `output_item.added` event opened (see `ResponseBuilder.resume`)."""
        item = cls(added["type"], added["id"], output_index)
        if item.type in CALL_EVENTS:
            kind = "custom" if item.type == "custom_tool_call" else "function"
            first = ToolCallDelta(-1, added.get("call_id"), added.get("name"), kind=kind)
            item.call = _Call(first)
            item.call.merge(first)
            item.call.namespace = added.get("namespace")
        item.encrypted_content = added.get("encrypted_content")
        if item.type in HOSTED_EVENTS:
            item.hosted = dict(added)
        return item

    def wire(self, status: str) -> dict[str, Any]:
        """The item as it appears on the wire, with `status`."""
        if self.hosted is not None:
            wire = {**self.hosted, "id": self.id, "type": self.type}
            if "status" in wire:  # (not every hosted type has one)
                wire["status"] = status
            if self.stream:
                wire[HOSTED_STREAMS[self.type][2]] = self.streamed()
            return wire
        if self.type == "message":
            return {
                "id": self.id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [p.wire() for p in self.content],
            }
        if self.type in CALL_EVENTS:
            call = self.call
            assert call is not None
            wire = {
                "id": self.id,
                "type": self.type,
                "status": status,
                "call_id": call.call_id,
                "name": call.name,
                CALL_EVENTS[self.type][2]: call.arguments(),
            }
            if call.namespace:
                wire["namespace"] = call.namespace
            return wire
        if self.type == "compaction":
            return {
                "id": self.id,
                "type": "compaction",
                "status": status,
                "encrypted_content": self.encrypted_content or "",
            }
        item: dict[str, Any] = {
            "id": self.id,
            "type": "reasoning",
            "status": status,
            "summary": [p.wire() for p in self.summary],
        }
        if self.content:
            item["content"] = [p.wire() for p in self.content]
        if self.encrypted_content is not None:
            item["encrypted_content"] = self.encrypted_content
        return item

    def streamed(self) -> str:
        if len(self.stream) > 1:
            self.stream = ["".join(self.stream)]
        return self.stream[0] if self.stream else ""


class _Call:
    """A tool call being assembled from `ToolCallDelta` fragments."""

    __slots__ = ("call_id", "chunks", "index", "item_type", "name", "namespace")

    def __init__(self, first: ToolCallDelta) -> None:
        self.index = first.index
        self.item_type = "custom_tool_call" if first.kind == "custom" else "function_call"
        self.namespace = first.namespace
        self.call_id: str | None = None
        self.name: str | None = None
        self.chunks: list[str] = []

    def merge(self, sig: ToolCallDelta) -> None:
        if sig.call_id and not self.call_id:
            self.call_id = sig.call_id
        if sig.name and not self.name:
            self.name = sig.name
        if sig.arguments:
            self.chunks.append(sig.arguments)

    def arguments(self) -> str:
        if len(self.chunks) > 1:
            self.chunks = ["".join(self.chunks)]
        return self.chunks[0] if self.chunks else ""


class BuilderError(RuntimeError):
    """The builder was used out of order (a bug in the caller, not in the stream)."""


class ResponseBuilder:
    """Feed signals, get events. `response` is the snapshot, updated as events go out."""

    def __init__(
        self,
        response: dict[str, Any],
        *,
        clock: Callable[[], int],
        mint: Callable[[str], str] = new_id,
        carry: Callable[[dict[str, Any]], str] | None = None,
        expose_carried: bool = True,
        reasoning_events: ReasoningEvents = "openai",
    ) -> None:
        """`carry`: seals a finished reasoning item into the `encrypted_content` it carries
        (kept in `carried` by item id for the store; on the wire only with `expose_carried`,
        i.e. when the request's `include` asks for `reasoning.encrypted_content`)."""
        self.response = response
        self._carry = carry
        self._expose_carried = expose_carried
        self.carried: dict[str, str] = {}
        # Raw reasoning event names: OpenAI's or Open Responses' (lifecycle.EVENT_NAMES).
        self._renames = EVENT_NAMES[reasoning_events]
        self.sequence_number = 0
        self.state = "start"
        self._clock = clock
        self._mint = mint
        self._live: _Item | None = None
        self._calls: dict[int, _Item] = {}  # upstream tool index -> its item
        self._hosted: dict[int, _Item] = {}  # upstream hosted item index -> its item
        self._pending: dict[int, _Call] = {}  # buffered calls, not yet emitted
        self._usage: Usage | None = None

    @classmethod
    def resume(
        cls,
        response: dict[str, Any],
        events: Iterable[Event],
        *,
        clock: Callable[[], int],
        mint: Callable[[str], str] = new_id,
    ) -> ResponseBuilder:
        """A builder in the state that `events` (a stream a builder emitted, from its
        first event) left it in, so that what follows continues that stream exactly:
        e.g. crash recovery feeds it a `Failure`, which closes the open item and ends
        with `error` + `response.failed` carrying the partial output. `response` is
        the Response as stored; with no events, the builder goes on from its status.
        Upstream tool-call numbering and usage are not in the events: a resumed
        builder is for ending a stream, not for more tool-call fragments."""
        builder = cls(response, clock=clock, mint=mint)
        replayed = False
        for event in events:
            if not replayed:
                response["output"] = []  # rebuilt from the items the events close
                replayed = True
            builder._replay(event)
        if not replayed:
            builder.state = "queued" if response["status"] == "queued" else "in_progress"
        return builder

    # ------------------------------------------------------------ public API

    @property
    def done(self) -> bool:
        """True once the terminal event has been emitted."""
        return self.state == "ended"

    def open(self, *, queued: bool = False) -> list[Event]:
        """`response.created`, then `response.queued` or `response.in_progress`."""
        out: list[Event] = []
        self.response["status"] = "queued" if queued else "in_progress"
        self._emit(out, {"type": "response.created", "response": self._bare_snapshot()})
        if queued:
            self._emit(out, {"type": "response.queued", "response": self._bare_snapshot()})
        else:
            self._emit(out, {"type": "response.in_progress", "response": self._bare_snapshot()})
        return out

    def run(self) -> list[Event]:
        """For a queued response: `response.in_progress` when work begins."""
        out: list[Event] = []
        self.response["status"] = "in_progress"
        self._emit(out, {"type": "response.in_progress", "response": self._bare_snapshot()})
        return out

    def feed(self, signal: Signal) -> list[Event]:
        if self.state in ("ended", "errored", "start"):
            raise BuilderError(f"cannot feed {type(signal).__name__} in state {self.state!r}")
        out: list[Event] = []
        _DISPATCH[type(signal)](self, signal, out)
        return out

    def stored(self) -> dict[str, Any]:
        """The Response as it is kept: reasoning items with the `encrypted_content` they
        carry even when the wire left it out."""
        if not self.carried:
            return self.response
        snap = copy.copy(self.response)
        snap["output"] = [
            {**item, "encrypted_content": self.carried[item["id"]]}
            if item.get("id") in self.carried
            else item
            for item in self.response["output"]
        ]
        return snap

    def snapshot(self) -> dict[str, Any]:
        """The Response as of now, open items included with status `in_progress`."""
        snap = copy.copy(self.response)
        output = list(self.response["output"])
        if self._live is not None:
            output.append(self._live.wire("in_progress"))
        snap["output"] = output
        return snap

    def _replay(self, event: Event) -> None:
        """Step the state machines for an event emitted earlier, and rebuild what it carries."""
        event_type = event["type"]
        live = self._live
        if event_type in ITEM_EVENTS:
            assert live is not None, f"{event_type} outside an item"
            live.state = step_item(live.type, live.state, item_key(event))
            if event_type == "response.content_part.added":
                live.content.append(_Part(event["part"]["type"]))
            elif event_type == "response.reasoning_summary_part.added":
                live.summary.append(_Part("summary_text"))
            elif event_type == "response.content_part.done":
                live.content[-1].open = False
            elif event_type == "response.reasoning_summary_part.done":
                live.summary[-1].open = False
            elif event_type in HOSTED_ITEM_EVENTS:
                stream = HOSTED_STREAMS.get(live.type)
                if stream is not None and event_type == stream[0]:
                    live.stream.append(event["delta"])
                elif stream is not None and event_type == stream[1]:
                    live.stream = [event[stream[2]]]
            elif event_type == "response.output_text.annotation.added":
                live.content[-1].annotations.append(event["annotation"])
            elif "delta" in event:
                if event.get("logprobs"):
                    live.content[-1].logprobs.extend(event["logprobs"])
                if event_type == "response.reasoning_summary_text.delta":
                    live.summary[-1].chunks.append(event["delta"])
                elif live.call is not None:
                    live.call.chunks.append(event["delta"])
                else:
                    live.content[-1].chunks.append(event["delta"])
        else:
            self.state = step_response(self.state, event_type)
            if event_type == "response.output_item.added":
                self._live = _Item.resumed(event["item"], event["output_index"])
            elif event_type == "response.output_item.done":
                assert live is not None
                live.state = step_item(live.type, live.state, event_type)
                self.response["output"].append(event["item"])
                self._live = None
            if "response" in event:
                self.response.update((k, v) for k, v in event["response"].items() if k != "output")
        self.sequence_number = event["sequence_number"] + 1

    # ------------------------------------------------------------ emission

    def _emit(self, out: list[Event], event: Event) -> None:
        event_type = event["type"]
        if event_type in self._renames:
            event["type"] = event_type = self._renames[event_type]
        if event_type in ITEM_EVENTS:
            live = self._live
            assert live is not None
            live.state = step_item(live.type, live.state, item_key(event))
        else:
            self.state = step_response(self.state, event_type)
        event["sequence_number"] = self.sequence_number
        self.sequence_number += 1
        out.append(event)

    def _bare_snapshot(self) -> dict[str, Any]:
        snap = copy.copy(self.response)
        snap["output"] = []
        return snap

    # ------------------------------------------------------------ items

    def _open_item(
        self,
        out: list[Event],
        item_type: str,
        call: _Call | None = None,
        hosted: dict[str, Any] | None = None,
        encrypted_content: str | None = None,
    ) -> _Item:
        item_id = (hosted or {}).get("id") or self._mint(item_type)
        item = _Item(item_type, item_id, len(self.response["output"]))
        item.call = call
        item.hosted = None if hosted is None else dict(hosted)
        item.encrypted_content = encrypted_content
        self._live = item
        added = item.wire("in_progress")
        if call is not None:
            added[CALL_EVENTS[item_type][2]] = ""  # buffered arguments follow as a delta
        self._emit(
            out,
            {
                "type": "response.output_item.added",
                "output_index": item.output_index,
                "item": added,
            },
        )
        return item

    def _close_item(self, out: list[Event], status: str = "completed") -> None:
        item = self._live
        if item is None:
            return
        self._close_part(out, item)
        self._close_summary(out, item)
        if item.hosted is not None:
            status = self._finish_hosted(out, item, status)
        if item.type in CALL_EVENTS and item.state != "arguments_done":
            _, done_type, field = CALL_EVENTS[item.type]
            arguments = item.call.arguments() if item.call else ""
            self._emit(
                out,
                {
                    "type": done_type,
                    "item_id": item.id,
                    "output_index": item.output_index,
                    field: arguments,
                },
            )
        final = item.wire(status)
        if item.type == "reasoning" and self._carry is not None:
            blob = self._carry(final)
            self.carried[item.id] = blob
            final.pop("encrypted_content", None)
            if self._expose_carried:
                final["encrypted_content"] = blob
        self.response["output"].append(final)
        self._emit(
            out,
            {"type": "response.output_item.done", "output_index": item.output_index, "item": final},
        )
        item.state = step_item(item.type, item.state, "response.output_item.done")
        self._live = None

    def _open_part(self, out: list[Event], item: _Item, part_type: str) -> _Part:
        part = _Part(part_type)
        item.content.append(part)
        self._emit(
            out,
            {
                "type": "response.content_part.added",
                "item_id": item.id,
                "output_index": item.output_index,
                "content_index": len(item.content) - 1,
                "part": part.wire(),
            },
        )
        return part

    def _close_part(self, out: list[Event], item: _Item) -> None:
        if not item.content or not item.content[-1].open:
            return
        part = item.content[-1]
        part.open = False
        _, done_type, field = PART_EVENTS[part.type]
        where = {
            "item_id": item.id,
            "output_index": item.output_index,
            "content_index": len(item.content) - 1,
        }
        if not item.state.startswith("part_done:"):  # (a resumed builder may have sent it)
            done: Event = {"type": done_type, **where, field: part.text()}
            if part.type == "output_text":
                done["logprobs"] = list(part.logprobs)
            self._emit(out, done)
        self._emit(out, {"type": "response.content_part.done", **where, "part": part.wire()})

    def _close_summary(self, out: list[Event], item: _Item) -> None:
        if not item.summary or not item.summary[-1].open:
            return
        part = item.summary[-1]
        part.open = False
        where = {
            "item_id": item.id,
            "output_index": item.output_index,
            "summary_index": len(item.summary) - 1,
        }
        if item.state != "summary_done":  # (a resumed builder may have sent it)
            self._emit(
                out, {"type": "response.reasoning_summary_text.done", **where, "text": part.text()}
            )
        self._emit(
            out, {"type": "response.reasoning_summary_part.done", **where, "part": part.wire()}
        )

    def _live_of(self, out: list[Event], item_type: str) -> _Item:
        """The open item if it has `item_type`; otherwise close what is open and open one."""
        live = self._live
        if live is not None and live.type == item_type:
            return live
        self._close_open(out)
        return self._open_item(out, item_type)

    def _close_open(self, out: list[Event], last_status: str = "completed") -> None:
        """Close the open item, then emit buffered tool calls whole; the last gets `last_status`."""
        pending = [self._pending[i] for i in sorted(self._pending) if self._pending[i].name]
        if self._live is not None:
            self._close_item(out, "completed" if pending else last_status)
        for n, call in enumerate(pending):
            del self._pending[call.index]
            item = self._start_call(out, call)
            self._close_item(out, last_status if n == len(pending) - 1 else "completed")
            self._calls[call.index] = item

    # ------------------------------------------------------------ signals

    def _on_text(self, sig: TextDelta, out: list[Event]) -> None:
        self._content_delta(out, "output_text", sig.text, sig.logprobs)

    def _on_refusal(self, sig: RefusalDelta, out: list[Event]) -> None:
        self._content_delta(out, "refusal", sig.text)

    def _content_delta(
        self, out: list[Event], part_type: str, text: str, logprobs: tuple[dict, ...] = ()
    ) -> None:
        if not text:
            return
        item = self._live_of(out, "message")
        part = item.content[-1] if item.content else None
        if part is None or not part.open or part.type != part_type:
            self._close_part(out, item)
            part = self._open_part(out, item, part_type)
        part.chunks.append(text)
        delta: Event = {
            "type": PART_EVENTS[part_type][0],
            "item_id": item.id,
            "output_index": item.output_index,
            "content_index": len(item.content) - 1,
            "delta": text,
        }
        if part_type == "output_text":
            part.logprobs.extend(logprobs)
            delta["logprobs"] = list(logprobs)
        self._emit(out, delta)

    def _on_annotation(self, sig: Annotation, out: list[Event]) -> None:
        live = self._live
        part = live.content[-1] if live is not None and live.content else None
        if part is None or not part.open or part.type != "output_text":
            return  # no answer text open to annotate
        assert live is not None
        part.annotations.append(sig.annotation)
        self._emit(
            out,
            {
                "type": "response.output_text.annotation.added",
                "item_id": live.id,
                "output_index": live.output_index,
                "content_index": len(live.content) - 1,
                "annotation_index": len(part.annotations) - 1,
                "annotation": sig.annotation,
            },
        )

    # ------------------------------------------------------------ hosted-tool items

    def _on_hosted(self, sig: HostedItem, out: list[Event]) -> None:
        item = self._hosted.get(sig.index)
        if item is None:
            if sig.item is None or sig.item.get("type") not in HOSTED_EVENTS:
                return  # progress of an item never opened carries nothing to show
            self._close_open(out)
            item = self._open_item(out, sig.item["type"], hosted=sig.item)
            self._hosted[sig.index] = item
        elif item is not self._live:
            return  # the item was closed already
        if sig.event is not None:
            self._hosted_progress(out, item, sig.event, sig.data or {})
        if sig.done and sig.item is not None:
            if sig.item.get("type") == item.type:  # (another type's fields would not fit)
                item.hosted = {**sig.item, "id": item.id}
            final = sig.item.get("status") or ("failed" if sig.item.get("error") else "completed")
            self._close_item(out, final)

    def _hosted_progress(
        self, out: list[Event], item: _Item, event_type: str, data: dict[str, Any]
    ) -> None:
        """Emit one progress event of the open hosted item; one its lifecycle does not
        allow here (an upstream out of order) is left out."""
        stream = HOSTED_STREAMS.get(item.type)
        if (
            stream is not None
            and item.state == hosted_state(item.type, stream[0])
            and event_type not in stream[:2]
        ):
            self._end_stream(out, item, stream)  # the field ends before what follows
        if (item.type, item.state, event_type) not in ITEM_TRANSITIONS:
            return
        event: Event = {"type": event_type, "item_id": item.id, "output_index": item.output_index}
        if stream is not None and event_type == stream[0]:
            if not data.get("delta"):
                return
            item.stream.append(data["delta"])
            event["delta"] = data["delta"]
        elif stream is not None and event_type == stream[1]:
            if not item.stream and data.get(stream[2]):
                item.stream.append(data[stream[2]])
            event[stream[2]] = item.streamed()
        else:
            event.update((k, v) for k, v in data.items() if k not in event and k != "type")
        self._emit(out, event)

    def _end_stream(self, out: list[Event], item: _Item, stream: tuple[str, str, str]) -> None:
        self._emit(
            out,
            {
                "type": stream[1],
                "item_id": item.id,
                "output_index": item.output_index,
                stream[2]: item.streamed(),
            },
        )

    def _finish_hosted(self, out: list[Event], item: _Item, status: str) -> str:
        """Close a hosted item's stages before `output_item.done`; returns its status.
        An item cut short ends `incomplete` (`failed` where its type has no such status)."""
        if status == "incomplete" and item.type == "image_generation_call":
            status = "failed"
        stream = HOSTED_STREAMS.get(item.type)
        if stream is not None and item.state == hosted_state(item.type, stream[0]):
            self._end_stream(out, item, stream)
        last = hosted_last(item.type)
        if item.state not in {hosted_state(item.type, e) for e in last}:
            ending = next((e for e in last if e.rsplit(".", 1)[1] == status), None)
            if ending is not None:
                self._emit(
                    out, {"type": ending, "item_id": item.id, "output_index": item.output_index}
                )
        return status

    def _on_reasoning(self, sig: ReasoningDelta, out: list[Event]) -> None:
        if not sig.text:
            return
        item = self._live_of(out, "reasoning")
        if item.encrypted_content is not None:
            # Opaque state ends a reasoning block; new text starts a new item.
            self._close_open(out)
            item = self._open_item(out, "reasoning")
        if sig.kind == "raw":
            self._close_summary(out, item)
            part = item.content[-1] if item.content and item.content[-1].open else None
            if part is None:
                part = self._open_part(out, item, "reasoning_text")
            part.chunks.append(sig.text)
            self._emit(
                out,
                {
                    "type": "response.reasoning_text.delta",
                    "item_id": item.id,
                    "output_index": item.output_index,
                    "content_index": len(item.content) - 1,
                    "delta": sig.text,
                },
            )
            return
        self._close_part(out, item)
        part = item.summary[-1] if item.summary and item.summary[-1].open else None
        where = {"item_id": item.id, "output_index": item.output_index}
        if part is None:
            part = _Part("summary_text")
            item.summary.append(part)
            self._emit(
                out,
                {
                    "type": "response.reasoning_summary_part.added",
                    **where,
                    "summary_index": len(item.summary) - 1,
                    "part": part.wire(),
                },
            )
        part.chunks.append(sig.text)
        self._emit(
            out,
            {
                "type": "response.reasoning_summary_text.delta",
                **where,
                "summary_index": len(item.summary) - 1,
                "delta": sig.text,
            },
        )

    def _on_opaque(self, sig: ReasoningOpaque, out: list[Event]) -> None:
        live = self._live
        if live is None or live.type != "reasoning" or live.encrypted_content is not None:
            self._close_open(out)
            live = self._open_item(out, "reasoning")
        live.encrypted_content = sig.encrypted_content
        self._close_open(out)

    def _on_compaction(self, sig: Compaction, out: list[Event]) -> None:
        self._close_open(out)
        self._open_item(out, "compaction", encrypted_content=sig.encrypted_content)
        self._close_item(out)

    def _on_tool(self, sig: ToolCallDelta, out: list[Event]) -> None:
        item = self._calls.get(sig.index)
        if item is not None:
            if item is not self._live:
                if not sig.arguments:
                    return  # an empty fragment for a finished call carries nothing
                self._on_failure(
                    Failure(
                        "upstream_protocol_error",
                        f"Upstream sent more of tool call {sig.index} after it ended.",
                    ),
                    out,
                )
                return
            assert item.call is not None
            item.call.merge(ToolCallDelta(sig.index, arguments=sig.arguments))
            self._call_delta(out, item, sig.arguments)
            return
        call = self._pending.get(sig.index)
        if call is None:
            call = self._pending[sig.index] = _Call(sig)
        call.merge(sig)
        live = self._live
        if (live is not None and live.type in CALL_EVENTS) or not call.name:
            return  # buffered until the open call ends (or until the name is known)
        del self._pending[sig.index]
        self._close_open(out)
        self._calls[sig.index] = self._start_call(out, call)

    def _start_call(self, out: list[Event], call: _Call) -> _Item:
        """Open a call item for `call` and emit what is buffered as one delta."""
        if not call.call_id:
            call.call_id = self._mint("call")
        item = self._open_item(out, call.item_type, call)
        self._call_delta(out, item, call.arguments())
        return item

    def _call_delta(self, out: list[Event], item: _Item, delta: str) -> None:
        if delta:
            self._emit(
                out,
                {
                    "type": CALL_EVENTS[item.type][0],
                    "item_id": item.id,
                    "output_index": item.output_index,
                    "delta": delta,
                },
            )

    def _on_usage(self, sig: Usage, out: list[Event]) -> None:
        self._usage = sig

    def _on_finish(self, sig: Finish, out: list[Event]) -> None:
        nameless = [c for c in self._pending.values() if not c.name]
        if nameless:
            self._on_failure(
                Failure(
                    "upstream_protocol_error",
                    f"Upstream tool call {nameless[0].index} has no name.",
                ),
                out,
            )
            return
        incomplete = sig.reason != "stop"
        self._close_open(out, "incomplete" if incomplete else "completed")
        self._finalize("incomplete" if incomplete else "completed")
        if incomplete:
            self.response["incomplete_details"] = {"reason": sig.reason}
            self._emit(out, {"type": "response.incomplete", "response": self.response})
        else:
            self.response["completed_at"] = self._clock()
            self._emit(out, {"type": "response.completed", "response": self.response})

    def _on_failure(self, sig: Failure, out: list[Event]) -> None:
        self._pending = {i: c for i, c in self._pending.items() if c.name}
        self._close_open(out, "incomplete")
        error = {"type": "server_error", "code": sig.code, "message": sig.message, "param": None}
        # OpenAI's flat fields and the Open Responses nested object, so both schemas accept it.
        flat = {"code": sig.code, "message": sig.message, "param": None}
        self._emit(out, {"type": "error", **flat, "error": error})
        self._finalize("failed")
        self.response["error"] = response_error(sig.code, sig.message)
        self._emit(out, {"type": "response.failed", "response": self.response})

    def _finalize(self, status: str) -> None:
        self.response["status"] = status
        u = self._usage
        if u is not None:
            self.response["usage"] = usage_object(
                u.input_tokens,
                u.output_tokens,
                u.cached_tokens,
                u.reasoning_tokens,
                u.cache_write_tokens,
            )


# signal type -> its handler: one table for every builder (not bound methods per instance)
_DISPATCH: dict[type, Callable[[ResponseBuilder, Any, list[Event]], None]] = {
    TextDelta: ResponseBuilder._on_text,
    Annotation: ResponseBuilder._on_annotation,
    HostedItem: ResponseBuilder._on_hosted,
    RefusalDelta: ResponseBuilder._on_refusal,
    ReasoningDelta: ResponseBuilder._on_reasoning,
    ReasoningOpaque: ResponseBuilder._on_opaque,
    Compaction: ResponseBuilder._on_compaction,
    ToolCallDelta: ResponseBuilder._on_tool,
    Usage: ResponseBuilder._on_usage,
    Finish: ResponseBuilder._on_finish,
    Failure: ResponseBuilder._on_failure,
}
