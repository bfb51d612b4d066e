"""Helpers for Chat Completions tests: reading a chunk stream off the wire and holding
it to the strict checker."""

from __future__ import annotations

from typing import Any

import orjson

from respgate.sse import SSEDecoder
from respgate.surfaces.chat.validate import DONE, check_chunks


def parse_chat_sse(body: bytes) -> list[dict[str, Any] | str]:
    """The frames of a Chat Completions stream: data-only frames, as OpenAI writes them."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    decoder.close()
    frames: list[dict[str, Any] | str] = []
    for event in events:
        assert event.event == "message", f"no event: lines, got {event.event!r}"
        frames.append(DONE if event.data == DONE else orjson.loads(event.data))
    return frames


def checked(body: bytes, *, include_usage: bool = False) -> list[dict[str, Any] | str]:
    """The frames of `body`, after the strict checker found nothing wrong with them."""
    frames = parse_chat_sse(body)
    violations = check_chunks(frames, include_usage=include_usage)
    assert not violations, [str(v) for v in violations]
    return frames
