"""`<think>` blocks inside Chat Completions content become raw reasoning, at any chunking."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from respgate.protocol.signals import Finish, ReasoningDelta, TextDelta
from respgate.providers.chat_completions import ChatTranslator
from respgate.providers.think import ThinkTags
from respgate.providers.tools import ToolTable


def split(content: str, cuts: list[int]) -> tuple[str, str]:
    """(reasoning, text) from feeding `content` cut at `cuts`."""
    tags = ThinkTags()
    points = sorted({c % (len(content) + 1) for c in cuts})
    pieces = [content[a:b] for a, b in zip([0, *points], [*points, len(content)], strict=True)]
    signals = [s for piece in pieces for s in tags.feed(piece)] + tags.end()
    reasoning = "".join(s.text for s in signals if isinstance(s, ReasoningDelta))
    text = "".join(s.text for s in signals if isinstance(s, TextDelta))
    assert all(s.kind == "raw" for s in signals if isinstance(s, ReasoningDelta))
    return reasoning, text


CASES = [
    ("<think>Let me see.</think>\n\nThe answer is 4.", ("Let me see.", "The answer is 4.")),
    ("\n<think>\nstep 1\n</think>Done", ("\nstep 1\n", "Done")),
    ("No tags here.", ("", "No tags here.")),
    ("  leading space kept", ("", "  leading space kept")),
    ("A <think> later is just text", ("", "A <think> later is just text")),
    ("<thinking>not a tag</thinking>", ("", "<thinking>not a tag</thinking>")),
    ("<think>never closed", ("never closed", "")),
    ("<think></think>", ("", "")),
    ("<thi", ("", "<thi")),
    ("   ", ("", "   ")),
    ("<think>a</think>b</think>c", ("a", "b</think>c")),
]


@pytest.mark.parametrize(("content", "expected"), CASES, ids=[c[0][:20] for c in CASES])
@given(cuts=st.lists(st.integers(0, 60), max_size=6))
def test_split_is_the_same_at_any_chunking(
    content: str, expected: tuple[str, str], cuts: list[int]
) -> None:
    assert split(content, cuts) == expected


def test_through_the_chat_translator() -> None:
    translator = ChatTranslator(ToolTable(None, "local", []), "local")
    signals = []
    for piece in ["<th", "ink>2+2", " is 4</thi", "nk>\n\n", "Four."]:
        chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        signals += translator.feed("message", orjson.dumps(chunk).decode())
    signals += translator.feed("message", "[DONE]")
    assert "".join(s.text for s in signals if isinstance(s, ReasoningDelta)) == "2+2 is 4"
    assert "".join(s.text for s in signals if isinstance(s, TextDelta)) == "Four."
    assert signals[-1] == Finish("stop")
