"""Reasoning written inline as `<think>…</think>` at the start of the answer.

Chat Completions backends that run a reasoning model without a reasoning parser
(llama.cpp, Ollama, vLLM without `--reasoning-parser`) stream the model's
thinking inside `content`. `ThinkTags` splits it off, sans-IO and across any
chunk boundaries: text inside a leading `<think>` block becomes raw reasoning,
the whitespace after `</think>` is dropped, everything else is the answer
untouched. A `<think>` that does not open the content is ordinary text.
"""

from __future__ import annotations

from ..protocol.signals import ReasoningDelta, Signal, TextDelta

OPEN = "<think>"
CLOSE = "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkTags:
    __slots__ = ("_pending", "_state")

    def __init__(self) -> None:
        self._state = "start"  # start -> think -> after -> text, or start -> text
        self._pending = ""  # text held back until it can be classified

    def feed(self, text: str) -> list[Signal]:
        if self._state == "text":
            return [TextDelta(text)] if text else []
        buf, self._pending = self._pending + text, ""
        out: list[Signal] = []
        while buf:
            if self._state == "start":
                head = buf.lstrip()
                if head.startswith(OPEN):
                    buf, self._state = head[len(OPEN) :], "think"
                elif OPEN.startswith(head):  # only whitespace, or a tag still arriving
                    self._pending = buf
                    return out
                else:
                    self._state = "text"
            elif self._state == "think":
                end = buf.find(CLOSE)
                if end < 0:
                    keep = _partial_suffix(buf, CLOSE)
                    thought, self._pending = buf[: len(buf) - keep], buf[len(buf) - keep :]
                    if thought:
                        out.append(ReasoningDelta(thought, "raw"))
                    return out
                if end:
                    out.append(ReasoningDelta(buf[:end], "raw"))
                buf, self._state = buf[end + len(CLOSE) :], "after"
            elif self._state == "after":
                buf = buf.lstrip()
                if buf:
                    self._state = "text"
            else:
                out.append(TextDelta(buf))
                return out
        return out

    def end(self) -> list[Signal]:
        """What is still held back when the content ends."""
        pending, self._pending = self._pending, ""
        if not pending:
            return []
        return [ReasoningDelta(pending, "raw") if self._state == "think" else TextDelta(pending)]
