"""Conversation context load and turn append latency of each store backend.

    python bench/bench_conversations.py [--turns 100] [--repeat 200] [--database-url postgresql://…]

Stores `--others` unrelated conversations of one turn, then one conversation of `--turns`
turns (each turn: a user message, a function call, its output and an assistant message,
4 items, as `bench_chain.py` builds its chains), and times `conversation_items` (what a
`POST /v1/responses` with `conversation` reads before the model call) and
`add_conversation_items` of one turn (what its terminal step writes). SQLite runs in a
temporary data directory (`synchronous` FULL); PostgreSQL runs when `--database-url` or
`RESPGATE_DATABASE_URL` is given, in a throw-away schema. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stores  # the bench/ module; it puts src/ on the path

from respgate.conversations import stored_items
from respgate.protocol.ids import new_id
from respgate.store.sql import SqlStore

TEXT = "lorem ipsum dolor sit amet " * 20  # ~540 characters per message


def turn(n: int) -> list[dict[str, Any]]:
    call_id = f"call_{n}"
    return stored_items(
        [
            {"type": "message", "role": "user", "content": TEXT},
            {"type": "function_call", "call_id": call_id, "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": call_id, "output": TEXT},
            {"type": "message", "role": "assistant", "content": TEXT},
        ]
    )


def conversation() -> dict[str, Any]:
    return {"id": new_id("conversation"), "created_at": 1_700_000_000, "metadata": {}}


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"median {statistics.median(samples) * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms"


async def measure(name: str, store: SqlStore, turns: int, repeat: int, others: int) -> None:
    for n in range(others):
        await store.create_conversation(conversation(), turn(n), "bench")
    conv = conversation()
    await store.create_conversation(conv, [], "bench")
    for n in range(turns):
        await store.add_conversation_items(conv["id"], "bench", turn(n))
    items = await store.conversation_items(conv["id"], "bench")
    assert items is not None and len(items) == 4 * turns
    loads = []
    for _ in range(repeat):
        start = time.perf_counter()
        await store.conversation_items(conv["id"], "bench")
        loads.append(time.perf_counter() - start)
    appends = []
    for n in range(repeat):
        batch = turn(n)
        start = time.perf_counter()
        await store.add_conversation_items(conv["id"], "bench", batch, skip_known=True)
        appends.append(time.perf_counter() - start)
    print(f"{name:<22} ({others} other conversations stored)")
    print(f"{'':<22} conversation_items({turns} turns, {len(items)} items): {ms(loads)}")
    print(f"{'':<22} add_conversation_items (1 turn, 4 items):  {ms(appends)}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    stores.add_options(parser)
    args = parser.parse_args()

    async def run(name: str, store: SqlStore) -> None:
        await measure(name, store, args.turns, args.repeat, args.others)

    await stores.each_store(run, args.database_url)


if __name__ == "__main__":
    asyncio.run(main())
