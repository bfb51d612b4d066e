"""Chain load and save latency of each store backend.

    python bench/bench_chain.py [--turns 100] [--repeat 200] [--database-url postgresql://…]

Stores `--others` unrelated responses, then builds a chain of `--turns` responses (each turn: a user message, a function
call, its output and an assistant message, so 4 items per turn) and times
`load_chain` on its newest response, then times single `save` calls. SQLite
runs in a temporary data directory (with `synchronous` FULL and NORMAL);
PostgreSQL runs when `--database-url` or `RESPGATE_DATABASE_URL` is given, in a
throw-away schema. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg

from respgate.protocol.ids import new_id
from respgate.store.base import StoredResponse
from respgate.store.postgres import PostgresStore
from respgate.store.sql import SqlStore
from respgate.store.sqlite import SqliteStore

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


async def measure(name: str, store: SqlStore, turns: int, repeat: int, others: int) -> None:
    for n in range(others):  # unrelated one-turn conversations, so the planner sees a real table
        await store.save(turn(None, n))
    previous = None
    for n in range(turns):
        record = turn(previous, n)
        await store.save(record)
        previous = record.response["id"]
    chain = await store.load_chain(previous, "bench")
    assert chain is not None and len(chain) == 4 * turns
    loads = []
    for _ in range(repeat):
        start = time.perf_counter()
        await store.load_chain(previous, "bench")
        loads.append(time.perf_counter() - start)
    saves = []
    for n in range(repeat):
        record = turn(None, n)
        start = time.perf_counter()
        await store.save(record)
        saves.append(time.perf_counter() - start)
    print(f"{name:<22} ({others} other responses stored)")
    print(f"{'':<22} load_chain({turns} turns, {len(chain)} items): {ms(loads)}")
    print(f"{'':<22} save (1 response, 4 items):          {ms(saves)}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--others", type=int, default=2000)
    parser.add_argument("--database-url", default=os.environ.get("RESPGATE_DATABASE_URL"))
    args = parser.parse_args()
    for synchronous in ("FULL", "NORMAL"):
        with tempfile.TemporaryDirectory() as data_dir:
            store = await SqliteStore.open(data_dir, synchronous=synchronous)
            try:
                await measure(
                    f"sqlite sync={synchronous}", store, args.turns, args.repeat, args.others
                )
            finally:
                await store.close()
    if not args.database_url:
        print("postgresql: skipped (give --database-url or RESPGATE_DATABASE_URL)")
        return
    schema = f"respgate_bench_{secrets.token_hex(4)}"
    store = await PostgresStore.open(args.database_url, schema=schema)
    try:
        await measure("postgresql", store, args.turns, args.repeat, args.others)
    finally:
        await store.close()
        conn = await asyncpg.connect(args.database_url)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
