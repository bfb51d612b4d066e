"""Server-Sent Events, sans-IO: the frame encoder the server writes with, and
the incremental WHATWG decoder clients read with.

Encoding rules (see docs/design.md): one frame per event,
`event: <type>\\ndata: <one-line JSON>\\n\\n`, LF only, no `id:` and no
`retry:`; keep-alives are comment lines; the stream ends with
`data: [DONE]\\n\\n`. orjson writes U+2028/U+2029 raw, which line splitters
that follow `str.splitlines` (httpx `iter_lines`) break on, so they are
escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

DONE_FRAME = b"data: [DONE]\n\n"
KEEPALIVE_FRAME = b": keep-alive\n\n"

_LS = "\u2028".encode()
_PS = "\u2029".encode()


def encode_json(obj: Any) -> bytes:
    """Compact one-line JSON with U+2028/U+2029 escaped."""
    data = orjson.dumps(obj)
    # (`find`, not `in`: CPython 3.11's `bytes.__contains__` tries its operand as an int
    # first and raises inside, ~2,000 instructions an event, 2% of a relayed stream's)
    if data.find(b"\xe2\x80") != -1:
        data = data.replace(_LS, b"\\u2028").replace(_PS, b"\\u2029")
    return data


def encode_frame(name: str, data: Any) -> bytes:
    """One SSE frame: `event: <name>` and `data` as one line of JSON."""
    return b"event: " + name.encode() + b"\ndata: " + encode_json(data) + b"\n\n"


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE frame for one Responses event; `event:` equals the event's `type`."""
    return encode_frame(event["type"], event)


@dataclass(frozen=True, slots=True)
class SSEFrames:
    """How one inbound surface writes its stream: a frame per event, then `end`."""

    encode: Callable[[dict[str, Any]], bytes]
    end: bytes


RESPONSES_FRAMES = SSEFrames(encode_event, DONE_FRAME)


# ---------------------------------------------------------------- decoder

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    """One dispatched event: its type, its data, and the last event ID at dispatch (a
    tuple: one is made per upstream chunk, at about half a frozen dataclass's cost)."""

    event: str = "message"
    data: str = ""
    id: str = ""


class SSEDecoder:
    """Incremental WHATWG event-stream decoder (HTML §9.2.5-9.2.6), sans-IO.

    `feed(bytes)` returns the events completed by those bytes, in order; `close()`
    ends the stream, discarding any event that lacks its blank line. Lines end at
    CR, LF or CRLF (a CR that ends one chunk and an LF that starts the next are
    one terminator). Only complete lines are decoded, as UTF-8 with invalid
    sequences replaced by U+FFFD, and each byte is searched for terminators once,
    so a huge line fed in many chunks costs linear time.

    `last_event_id` and `retry` (the reconnection time in ms, or None) are the
    stream-level state that the `id` and `retry` fields set; `dataless_events`
    counts blocks that named an event type but carried no data (many clients
    dispatch those as empty events and crash on them).
    """

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry: int | None = None
        self.incomplete = False  # set by close(): a partial line or event was discarded
        self.dataless_events = 0  # blocks with an `event:` type but no data (never dispatched)
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no line terminator
        self._started = False  # the leading BOM (if any) has been dealt with
        self._skip_lf = False  # the last terminator was a CR at a chunk's end
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        buf = self._buf
        buf += chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                return []  # could still be a BOM
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
            self._started = True
        end = max(buf.rfind(b"\n", self._scanned), buf.rfind(b"\r", self._scanned))
        if end < 0:
            self._scanned = len(buf)
            return []
        if end == len(buf) - 1 and buf[end] == 0x0D:
            self._skip_lf = True
        text = buf[: end + 1].decode("utf-8", "replace")
        del buf[: end + 1]
        self._scanned = len(buf)
        lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
        lines.pop()  # the text ends with a terminator, so the last piece is empty
        return self._lines(lines)

    def close(self) -> None:
        """End of stream: an event without its terminating blank line is dropped."""
        self.incomplete = bool(self._buf or self._data or self._event)
        self._buf.clear()
        self._scanned = 0
        self._event = ""
        self._data = []

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        event = self._event
        for line in lines:
            if not line:
                if data:
                    events.append(
                        ServerSentEvent(event or "message", "\n".join(data), self.last_event_id)
                    )
                    data = []
                elif event:
                    self.dataless_events += 1
                event = ""
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                if "\0" not in value:
                    self.last_event_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry = int(value)
            # anything else, comments (name "") included, is ignored
        self._data = data
        self._event = event
        return events
