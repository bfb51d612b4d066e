"""Chain load and save latency of each store backend.

    python bench/bench_chain.py [--turns 100] [--repeat 200] [--database-url postgresql://…]

Stores `--others` unrelated responses, then builds a chain of `--turns` responses (each
turn: a user message, a function call, its output and an assistant message, so 4 items per
turn). Times, interleaved so the machine's drift cancels, what `previous_response_id` costs
at turn 1 (naming the chain's first response: 4 items) and at turn `--turns` (naming its
newest: 4 x turns items), both as the store call (`load_chain`) and through
`Engine.context()` (what a request pays: status check, chain, errors), and prints the
difference; then times single `save` calls. SQLite
runs in a temporary data directory (with `synchronous` FULL and NORMAL);
PostgreSQL runs when `--database-url` or `RESPGATE_DATABASE_URL` is given, in a
throw-away schema. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import stores  # the bench/ module; it puts src/ on the path

from respgate.engine import Engine
from respgate.protocol.ids import new_id
from respgate.protocol.request import CreateRequest, parse_create_request
from respgate.providers.registry import ProviderRegistry
from respgate.store.base import StoredResponse
from respgate.store.sql import SqlStore

TEXT = "lorem ipsum dolor sit amet " * 20  # ~540 characters per message


def turn(previous: str | None, n: int) -> StoredResponse:
    call_id = f"call_{n}"
    response = {
        "id": new_id("response"),
        "object": "response",
        "created_at": 1_700_000_000 + n,
        "status": "completed",
        "background": False,
        "previous_response_id": previous,
        "model": "bench",
        "output": [
            {
                "id": new_id("function_call"),
                "type": "function_call",
                "status": "completed",
                "call_id": call_id,
                "name": "lookup",
                "arguments": '{"q": "x"}',
            },
            {
                "id": new_id("message"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": TEXT, "annotations": [], "logprobs": []}
                ],
            },
        ],
        "usage": {"input_tokens": 10, "output_tokens": 10, "total_tokens": 20},
    }
    items = [
        {"type": "message", "role": "user", "content": TEXT},
        {"type": "function_call_output", "call_id": call_id, "output": TEXT},
    ]
    return StoredResponse(response, items, "bench")


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"median {statistics.median(samples) * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms"


def request(previous: str) -> CreateRequest:
    body = {"model": "bench", "input": "next question", "previous_response_id": previous}
    return parse_create_request(orjson.dumps(body))


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


def load_chain(store: SqlStore, response_id: str) -> Callable[[], Awaitable[object]]:
    return lambda: store.load_chain(response_id, "bench")


def context(engine: Engine, response_id: str) -> Callable[[], Awaitable[object]]:
    req = request(response_id)  # parsed before the clock starts
    return lambda: engine.context(req, "bench")


async def measure(name: str, store: SqlStore, turns: int, repeat: int, others: int) -> None:
    for n in range(others):  # unrelated one-turn conversations, so the planner sees a real table
        await store.save(turn(None, n))
    ids: list[str] = []
    for n in range(turns):
        record = turn(ids[-1] if ids else None, n)
        await store.save(record)
        ids.append(record.response["id"])
    first, last = ids[0], ids[-1]
    engine = Engine(ProviderRegistry(), store)
    items = len(await engine.context(request(last), "bench")) - 1
    assert items == 4 * turns
    ops: dict[str, Callable[[str], Callable[[], Awaitable[object]]]] = {
        "load_chain": lambda rid: load_chain(store, rid),
        "Engine.context()": lambda rid: context(engine, rid),
    }
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeat):  # interleaved: turn 1 and turn N see the same machine
        for op, call in ops.items():
            for at, rid in (("1", first), (str(turns), last)):
                samples.setdefault((op, at), []).append(await timed(call(rid)))
    saves = [await timed(lambda n=n: store.save(turn(None, n))) for n in range(repeat)]
    print(f"{name:<22} ({others} other responses stored)")
    for op in ops:
        one = statistics.median(samples[(op, "1")])
        many = statistics.median(samples[(op, str(turns))])
        print(f"{'':<22} {op:<17} turn 1 (4 items):   {ms(samples[(op, '1')])}")
        print(f"{'':<22} {op:<17} turn {turns} ({items} items): {ms(samples[(op, str(turns))])}")
        print(f"{'':<22} {op:<17} turn {turns} - turn 1: {(many - one) * 1e3:+7.3f} ms (medians)")
    print(f"{'':<22} save (1 response, 4 items): {ms(saves)}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    stores.add_options(parser)
    args = parser.parse_args()

    async def run(name: str, store: SqlStore) -> None:
        await measure(name, store, args.turns, args.repeat, args.others)

    await stores.each_store(run, args.database_url, synchronous=("FULL", "NORMAL"))


if __name__ == "__main__":
    asyncio.run(main())
