from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from respgate.providers._sse import SSEDecoder

STREAM = (
    b"\xef\xbb\xbf: comment\n"
    b'event: message_start\ndata: {"a":1}\n\n'
    b"data: line one\r\ndata:line two\r\n\r\n"
    b"id: 7\rretry: 10\rdata\r\r"
    b"data: [DONE]\n\n"
    b"data: never dispatched"
)
EXPECTED = [
    ("message_start", '{"a":1}'),
    ("message", "line one\nline two"),
    ("message", ""),
    ("message", "[DONE]"),
]


def decode(chunks: list[bytes]) -> list[tuple[str, str]]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_whole_stream() -> None:
    # `data` with no colon is an empty data line: it dispatches an event with data "".
    assert decode([STREAM]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert decode(chunks) == EXPECTED


def test_crlf_split_between_chunks_is_one_line_break() -> None:
    assert decode([b"data: a\r", b"\n\r", b"\n"]) == [("message", "a")]


def test_multibyte_character_split_between_chunks() -> None:
    text = "data: h\u00e9llo \u2603\n\n".encode()
    assert decode([text[:9], text[9:]]) == [("message", "h\u00e9llo \u2603")]
