"""CPU cost of the protocol core, without HTTP: ResponseBuilder + SSE encoding.

Prints µs per event and per 50-token stream. Asserts nothing.
Usage: python bench/bench_builder.py [--streams 2000] [--tokens 50]
"""

from __future__ import annotations

import argparse
import time

from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.ids import new_id
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Finish, TextDelta, Usage
from respgate.sse import encode_event

BODY = b'{"model":"echo","input":"hello","stream":true}'


def one_stream(tokens: int) -> tuple[int, int]:
    req = parse_create_request(BODY)
    builder = ResponseBuilder(new_response(req, new_id("response"), 0), clock=lambda: 0)
    events = builder.open()
    for i in range(tokens):
        events += builder.feed(TextDelta(f"tok{i} "))
    events += builder.feed(Usage(5, tokens))
    events += builder.feed(Finish())
    body = b"".join(encode_event(e) for e in events)
    return len(events), len(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args()
    one_stream(args.tokens)
    start = time.perf_counter()
    events = size = 0
    for _ in range(args.streams):
        n, b = one_stream(args.tokens)
        events += n
        size += b
    seconds = time.perf_counter() - start
    print(
        f"{args.streams} streams x {args.tokens} tokens: {events / seconds:,.0f} events/s, "
        f"{seconds / events * 1e6:.2f} µs/event, {seconds / args.streams * 1e6:.0f} µs/stream, "
        f"{size / args.streams:,.0f} bytes/stream"
    )


if __name__ == "__main__":
    main()
