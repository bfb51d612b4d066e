"""Parse benchmark: events/s for respgate's SSE decoder, its typed event layer and
its full client state (decoder + types + accumulator), against the `openai` SDK's
own parsing of the same bytes. Prints numbers; asserts nothing.

    <checkout>/.venv/bin/python bench/bench_parse.py [--events 10000] [--repeat 5]

The stream is what respgate's `ResponseBuilder` emits for N text deltas (about
200 bytes a frame). Each case parses the whole stream from memory, split into
chunks of the given size (4096 bytes is typical of a socket read; 1 frame per
chunk is what an unbatched server produces); the best of `--repeat` runs counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from respgate.client import StreamState, decode_event
from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Finish, TextDelta, Usage
from respgate.sse import DONE_FRAME, SSEDecoder, encode_event


def make_stream(n: int) -> tuple[list[bytes], int]:
    """(frames, number of events) for a response of `n` text deltas."""
    response = new_response(parse_create_request(b'{"model":"m","input":"hi"}'), "resp_bench", 1)
    builder = ResponseBuilder(response, clock=lambda: 2)
    events = builder.open()
    for i in range(n):
        events += builder.feed(TextDelta(f"token {i} with some text, "))
    events += builder.feed(Usage(10, n))
    events += builder.feed(Finish())
    frames = [encode_event(e) for e in events] + [DONE_FRAME]
    return frames, len(events)


def chunked(frames: list[bytes], size: int) -> list[bytes]:
    if size == 0:  # one frame per chunk
        return frames
    body = b"".join(frames)
    return [body[i : i + size] for i in range(0, len(body), size)]


# ------------------------------------------------------------------ respgate


def respgate_decoder(chunks: list[bytes]) -> int:
    decoder = SSEDecoder()
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    decoder.close()
    return n - 1  # [DONE]


def respgate_typed(chunks: list[bytes]) -> int:
    decoder = SSEDecoder()
    n = 0
    for chunk in chunks:
        for sse in decoder.feed(chunk):
            if sse.data != "[DONE]":
                decode_event(sse.data)
                n += 1
    decoder.close()
    return n


def respgate_client(chunks: list[bytes]) -> int:
    state = StreamState()
    n = 0
    for chunk in chunks:
        n += len(state.feed(chunk))
    state.finish()
    return n


# ------------------------------------------------------------------ openai SDK


def openai_cases() -> dict[str, Callable[[list[bytes]], int]]:
    import httpx2
    import openai
    from openai._models import construct_type
    from openai._streaming import SSEDecoder as OpenAIDecoder
    from openai._streaming import Stream
    from openai.types.responses import ResponseStreamEvent

    def decoder(chunks: list[bytes]) -> int:
        return sum(
            1
            for sse in OpenAIDecoder().iter_bytes(iter(chunks))
            if not sse.data.startswith("[DONE]")
        )

    def typed(chunks: list[bytes]) -> int:
        n = 0
        for sse in OpenAIDecoder().iter_bytes(iter(chunks)):
            if not sse.data.startswith("[DONE]"):
                construct_type(type_=ResponseStreamEvent, value=json.loads(sse.data))
                n += 1
        return n

    client = openai.OpenAI(api_key="x", base_url="http://bench.invalid/v1")

    def stream(chunks: list[bytes]) -> int:
        request = httpx2.Request("POST", "http://bench.invalid/v1/responses")
        response = httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=httpx2.ByteStream(b"".join(chunks)),
            request=request,
        )
        return sum(1 for _ in Stream(cast_to=ResponseStreamEvent, response=response, client=client))

    return {
        "openai SSEDecoder": decoder,
        "openai SSEDecoder + construct_type": typed,
        "openai Stream (in-memory httpx2 response)": stream,
    }


def run(fn: Callable[[list[bytes]], int], chunks: list[bytes], expected: int) -> float:
    start = time.perf_counter()
    n = fn(chunks)
    elapsed = time.perf_counter() - start
    if n != expected:
        print(f"  ! {fn.__name__} parsed {n} events, expected {expected}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="text deltas in the stream")
    parser.add_argument(
        "--repeat", type=int, default=7, help="rounds (interleaved; the best counts)"
    )
    args = parser.parse_args()
    frames, count = make_stream(args.events)
    size = sum(map(len, frames))
    print(
        f"stream: {count} events + [DONE], {size:,} bytes; a text delta frame is {len(frames[5])} B; "
        f"Python {sys.version.split()[0]}, best of {args.repeat} interleaved rounds"
    )
    cases: dict[str, Callable[[list[bytes]], int]] = {
        "respgate SSEDecoder": respgate_decoder,
        "respgate SSEDecoder + typed events (msgspec)": respgate_typed,
        "respgate StreamState (decoder + typed + accumulator)": respgate_client,
    }
    cases.update(openai_cases())
    chunkings = {"4096-byte chunks": 4096, "1 frame per chunk": 0, "1 chunk": size}
    inputs = {label: chunked(frames, n) for label, n in chunkings.items()}
    best = {(case, label): float("inf") for case in cases for label in chunkings}
    for _ in range(args.repeat):
        for case, fn in cases.items():
            for label, chunks in inputs.items():
                best[case, label] = min(best[case, label], run(fn, chunks, count))
    width = max(map(len, cases))
    print(f"{'events/s':<{width}}  " + "  ".join(f"{label:>17}" for label in chunkings))
    for case in cases:
        print(
            f"{case:<{width}}  "
            + "  ".join(f"{count / best[case, label]:>17,.0f}" for label in chunkings)
        )


if __name__ == "__main__":
    main()
