"""One test per edge case of sse-stack.md §1.5 (items 1-11, and 12 where it is the decoder's)."""

from __future__ import annotations

import json

import pytest

from respgate.sse import DONE_FRAME, KEEPALIVE_FRAME, ServerSentEvent, SSEDecoder

from .helpers import decode as decode_chunks


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    return decode_chunks(list(chunks))


def datas(*chunks: bytes) -> list[str]:
    return [e.data for e in decode(*chunks)]


# 1. Line endings -------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_1_each_line_ending(eol: bytes) -> None:
    stream = b"event: x" + eol + b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode(stream) == [ServerSentEvent("x", "a\nb"), ServerSentEvent("message", "c")]


def test_1_mixed_line_endings_and_crlf_split_across_chunks() -> None:
    assert datas(b"data: a\r", b"\ndata: b\r\n\r\n") == ["a\nb"]
    assert datas(b"data: a\rdata: b\ndata: c\r\n\n", b"data: d\r", b"\r") == ["a\nb\nc", "d"]
    # A CR that ends a chunk dispatches at once; the LF that follows is not a blank line.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [ServerSentEvent("message", "a")]
    assert decoder.feed(b"\ndata: b\n\n") == [ServerSentEvent("message", "b")]


# 2. Chunking -----------------------------------------------------------------

STREAM = (
    "\ufeffevent: response.output_text.delta\r\n"
    'data: {"delta":"h\u00e9llo \U0001f600 \u2028"}\r\n'
    "\r\n"
    ": keep-alive\n\n"
    "id: 7\rdata: second\r\r"
    "data: [DONE]\n\n"
).encode()


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(STREAM)])
def test_2_chunk_sizes_give_identical_events(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert decode(*chunks) == [
        ServerSentEvent("response.output_text.delta", '{"delta":"h\u00e9llo \U0001f600 \u2028"}'),
        ServerSentEvent("message", "second", "7"),
        ServerSentEvent("message", "[DONE]", "7"),
    ]


def test_2_multibyte_character_split_across_chunks() -> None:
    emoji = "\U0001f600".encode()
    assert datas(b"data: a" + emoji[:1], emoji[1:3], emoji[3:] + b"b\n\n") == ["a\U0001f600b"]


def test_2_invalid_utf8_becomes_replacement_character() -> None:
    assert datas(b"data: a\xffb\xe2\x80\n\n", b"data: \xc3\n\n") == ["a\ufffdb\ufffd", "\ufffd"]


# 3. BOM ----------------------------------------------------------------------


def test_3_leading_bom_stripped_once_even_when_split() -> None:
    assert datas(b"\xef\xbb\xbfdata: a\n\n") == ["a"]
    assert datas(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == ["a"]
    # A second BOM is not stripped: the field name becomes "\ufeffdata", an unknown field.
    assert datas(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == ["b"]


def test_3_bom_mid_stream_stays_as_data() -> None:
    assert datas(b"data: a\n\n\xef\xbb\xbfdata: b\n\ndata: \xef\xbb\xbfc\n\n") == ["a", "\ufeffc"]


# 4. Data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: a\ndata: b\ndata: c\n\n", "a\nb\nc"),
        (b"data\n\n", ""),
        (b"data:\n\n", ""),
        (b"data:\ndata:\n\n", "\n"),
        (b"data: a\ndata\n\n", "a\n"),  # only the one trailing LF is stripped
        (b"data:x\n\n", "x"),
        (b"data:  x\n\n", " x"),
        (b"data:\tx\n\n", "\tx"),
        (b"data: x:y\n\n", "x:y"),
        (b"data: x \n\n", "x "),
    ],
)
def test_4_data_field_rules(stream: bytes, expected: str) -> None:
    assert datas(stream) == [expected]


# 5. Comments, unknown fields -------------------------------------------------


def test_5_comments_anywhere_and_ignored_fields() -> None:
    stream = (
        b":\n: ping\n:no-space\n\n"
        b"data: a\n: between\ndata: b\n:\n\n"
        b"Data: no\n data: no\nfoo: bar\ndata: c\nDATA: no\n\n" + KEEPALIVE_FRAME
    )
    assert decode(stream) == [ServerSentEvent("message", "a\nb"), ServerSentEvent("message", "c")]


# 6. event field --------------------------------------------------------------


def test_6_event_type_rules() -> None:
    stream = b"event: foo\n\nevent: bar\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\nevent: a\nevent: b\ndata: 4\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(stream) == decode(stream)
    assert decoder.dataless_events == 1
    assert [(e.event, e.data) for e in decode(stream)] == [
        ("bar", "1"),  # the data-less "foo" block dispatched nothing
        ("message", "2"),  # the type resets after each dispatch
        ("message", "3"),  # an empty event: means "message"
        ("b", "4"),
    ]


# 7. id field -----------------------------------------------------------------


def test_7_id_rules() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]  # persists across events
    assert decoder.feed(b"id: 2\x00x\ndata: c\n\n") == [
        ServerSentEvent("message", "c", "1")
    ]  # NUL: ignored
    assert decoder.feed(b"id: 3\n\n") == []  # data-less block: no event ...
    assert decoder.last_event_id == "3"  # ... but the last event ID is updated
    assert decoder.feed(b"data: d\n\n") == [ServerSentEvent("message", "d", "3")]
    assert decoder.feed(b"id\ndata: e\n\n") == [
        ServerSentEvent("message", "e", "")
    ]  # empty id resets
    assert decoder.feed(b"\n\n\n") == []  # stray blank lines after an id dispatch nothing


# 8. retry field, blank lines -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1000", 1000),
        (b"0", 0),
        (b"abc", None),
        (b"-1", None),
        (b"+5", None),
        (b"1.5", None),
        (b" 10", None),
        (b"1_000", None),
        (b"", None),
        ("\u0661".encode(), None),
    ],
)
def test_8_retry_only_ascii_digits(value: bytes, expected: int | None) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: " + value + b"\n\n") == []
    assert decoder.retry == expected


def test_8_many_blank_lines_produce_no_events() -> None:
    assert datas(b"\n" * 50 + b"\r\n" * 50 + b"\r" * 50 + b"data: a\n\n" + b"\n" * 50) == ["a"]


# 9. EOF ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [b"data: b\n", b"data: b", b"data: b\r", b"event: x\ndata: b\r\n", b"da"],
)
def test_9_eof_dispatches_nothing_incomplete(tail: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n" + tail) == [ServerSentEvent("message", "a")]
    decoder.close()
    assert decoder.incomplete


def test_9_clean_eof_is_not_incomplete() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n: bye\n")
    decoder.close()
    assert not decoder.incomplete


# 10. Size --------------------------------------------------------------------


def test_10_one_megabyte_line_in_small_chunks() -> None:
    line = b"x" * (1 << 20)
    chunks = [b"data: "] + [line[i : i + 1000] for i in range(0, len(line), 1000)] + [b"\n\n"]
    decoder = SSEDecoder()
    for chunk in chunks[:-1]:
        assert decoder.feed(chunk) == []
        # Each byte is searched once: the scan position follows the buffer's end.
        assert decoder._scanned == len(decoder._buf)
    assert decoder.feed(chunks[-1]) == [ServerSentEvent("message", line.decode())]


def test_10_hundred_thousand_tiny_events_in_one_chunk() -> None:
    events = decode(b"data: x\n\n" * 100_000)
    assert len(events) == 100_000
    assert events[-1] == ServerSentEvent("message", "x")


# 11. Special characters ------------------------------------------------------


def test_11_line_separators_and_nul_preserved() -> None:
    raw = "a\u2028b\u2029c\u0085d\x00e\x0bf\x0cg\x1c"
    assert datas(b"data: " + raw.encode() + b"\n\n") == [raw]
    escaped = json.dumps({"delta": raw})  # ensure_ascii: \u2028 etc. escaped
    assert json.loads(datas(b"data: " + escaped.encode() + b"\n\n")[0]) == {"delta": raw}


def test_11_pretty_printed_json_over_several_data_lines() -> None:
    obj = {"type": "response.output_text.delta", "delta": "a\u2028b", "nested": {"k": [1, 2]}}
    body = b"".join(
        b"data: " + line.encode() + b"\n" for line in json.dumps(obj, indent=2).splitlines()
    )
    assert json.loads(datas(body + b"\n")[0]) == obj


# 12. Application-level data the decoder must pass through untouched -----------


def test_12_done_and_non_json_and_error_events_pass_through() -> None:
    stream = (
        b'event: error\ndata: {"type":"error","code":"x"}\n\n'
        b'event: response.completed\ndata: {"type":"response.failed"}\n\n'
        b"data: ping\n\n" + DONE_FRAME
    )
    assert decode(stream) == [
        ServerSentEvent("error", '{"type":"error","code":"x"}'),
        ServerSentEvent("response.completed", '{"type":"response.failed"}'),
        ServerSentEvent("message", "ping"),
        ServerSentEvent("message", "[DONE]"),
    ]
