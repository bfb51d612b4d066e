"""A small incremental SSE splitter for upstream streams (bytes in, events out).

Private to the providers until `respgate.sse` grows its WHATWG decoder; then
this file folds into that one. Rules kept from the WHATWG algorithm: lines end
in LF, CR or CRLF (also split across chunks); a leading BOM is dropped; lines
starting with `:` are comments; `data:` lines join with LF; one optional space
after the colon is stripped; an empty line dispatches the event if it has data;
an event left incomplete at end of stream is discarded; `id` and `retry` are
ignored (no upstream we read uses them).
"""

from __future__ import annotations

SSEEvent = tuple[str, str]
"""(event name, data); the name is "message" when the upstream sent no `event:` line."""


class SSEDecoder:
    __slots__ = ("_buf", "_cr", "_data", "_event", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False  # the previous chunk ended in CR (maybe half of a CRLF)
        self._event = ""
        self._data: list[str] = []
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._started and chunk:
            self._started = True
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        self._cr = buf.endswith(b"\r")
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out: list[SSEEvent] = []
        for line in lines:
            self._line(line, out)
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                out.append((self._event or "message", "\n".join(self._data)))
                self._data = []
            self._event = ""
            return
        if line[0] == 0x3A:  # ":" comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
