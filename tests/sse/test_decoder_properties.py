"""Property tests: chunking never changes what the decoder dispatches."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from respgate.sse import ServerSentEvent, encode_event

from .helpers import decode

# Field values: any text without CR/LF, including U+2028/U+2029/U+0085/NUL/BOM.
value_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=20,
)
terminators = st.sampled_from(["\n", "\r", "\r\n"])


@dataclass
class Block:
    lines: list[str]  # field or comment lines, without terminators
    expected: ServerSentEvent | None


@st.composite
def blocks(draw: st.DrawFn, last_id: list[str]) -> Block:
    """One block (fields, comments, blank line) and the event it must dispatch."""
    lines: list[str] = []
    event = ""
    data: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["data", "data", "event", "id", "comment", "retry", "other"]))
        value = draw(value_text)
        if kind == "comment":
            lines.append(":" + value)
            continue
        if kind == "retry":
            value = str(draw(st.integers(0, 10**6)))
        if kind == "other":
            lines.append(draw(st.sampled_from(["Data", " data", "foo", "events"])) + ":" + value)
            continue
        # A written space after the colon is always stripped; a bare name means "".
        if value == "" and draw(st.booleans()):
            lines.append(kind)
        elif value.startswith(" "):
            lines.append(kind + ": " + value)
        else:
            lines.append(kind + draw(st.sampled_from([": ", ":"])) + value)
        if kind == "data":
            data.append(value)
        elif kind == "event":
            event = value
        elif kind == "id" and "\0" not in value:
            last_id[0] = value
    expected = ServerSentEvent(event or "message", "\n".join(data), last_id[0]) if data else None
    return Block(lines, expected)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    last_id = [""]
    parts: list[str] = []
    expected: list[ServerSentEvent] = []
    previous = ""
    for block in draw(st.lists(blocks(last_id), max_size=8)):
        for line in [*block.lines, ""]:
            terminator = draw(terminators)
            if previous == "\r" and line == "" and terminator == "\n":
                terminator = "\r\n"  # a lone LF after a CR would merge into one CRLF
            parts.append(line + terminator)
            previous = terminator
        if block.expected is not None:
            expected.append(block.expected)
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + "".join(parts)).encode(), expected


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    mode = draw(st.sampled_from(["one", "bytes", "random"]))
    if mode == "one":
        return [data]
    if mode == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=12)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


@settings(max_examples=400)
@given(st.data())
def test_valid_stream_decodes_to_its_events_however_chunked(data: st.DataObject) -> None:
    stream, expected = data.draw(streams())
    chunks = data.draw(chunkings(stream))
    assert decode(chunks) == expected


@settings(max_examples=400)
@given(st.data())
def test_any_bytes_decode_the_same_however_chunked(data: st.DataObject) -> None:
    alphabet = [
        b"data",
        b"event",
        b"id",
        b"retry",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"x",
        b"\xe2\x80\xa8",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xe2",
        b"\x00",
    ]
    stream = b"".join(data.draw(st.lists(st.sampled_from(alphabet), max_size=60)))
    chunks = data.draw(chunkings(stream))
    assert decode(chunks) == decode([stream])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), inner, max_size=4
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from("ab \u2028\u2029\u0085\x00\r\n\ufeff\u00e9\U0001f600"), max_size=30
    ),
    json_values,
    st.data(),
)
def test_encode_event_round_trips(text: str, extra: object, data: st.DataObject) -> None:
    event = {"type": "response.output_text.delta", "delta": text, "extra": extra}
    frame = encode_event(event)
    chunks = data.draw(chunkings(frame))
    (decoded,) = decode(chunks)
    assert decoded.event == "response.output_text.delta"
    assert orjson.loads(decoded.data) == event
