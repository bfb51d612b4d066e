"""Server-Sent Events, sans-IO: the frame encoder the server writes with.

Encoding rules (see docs/design.md): one frame per event,
`event: <type>\\ndata: <one-line JSON>\\n\\n`, LF only, no `id:` and no
`retry:`; keep-alives are comment lines; the stream ends with
`data: [DONE]\\n\\n`. orjson writes U+2028/U+2029 raw, which line splitters
that follow `str.splitlines` (httpx `iter_lines`) break on, so they are
escaped.
"""

from __future__ import annotations

from typing import Any

import orjson

DONE_FRAME = b"data: [DONE]\n\n"
KEEPALIVE_FRAME = b": keep-alive\n\n"

_LS = "\u2028".encode()
_PS = "\u2029".encode()


def encode_json(obj: Any) -> bytes:
    """Compact one-line JSON with U+2028/U+2029 escaped."""
    data = orjson.dumps(obj)
    if b"\xe2\x80" in data:
        data = data.replace(_LS, b"\\u2028").replace(_PS, b"\\u2029")
    return data


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE frame for one Responses event; `event:` equals the event's `type`."""
    return b"event: " + event["type"].encode() + b"\ndata: " + encode_json(event) + b"\n\n"
