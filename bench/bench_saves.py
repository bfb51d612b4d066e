"""SQLite save latency one at a time and concurrent (group commit), then the CPU a stored
stream's two saves cost (its `in_progress` record, not flushed, and its final save), split
between the event loop's thread and the store's threads, one stream at a time and 16 at
once, and the CPU of one round trip to a store thread and back with a job that does
nothing (what a save pays for running off the loop). Runs on uvloop, as `respgate serve`
does. Prints numbers.

python bench/bench_saves.py [--saves 200] [--streams 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time

import uvloop

from respgate.protocol.ids import new_id
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.store import open_store
from respgate.store.base import StoredResponse
from respgate.store.sql import Program
from respgate.store.sqlite import _Job, _Lane

REQUEST = parse_create_request(b'{"model":"echo","input":"hello"}')


def record() -> StoredResponse:
    response = new_response(REQUEST, new_id("response"), int(time.time()))
    response["status"] = "completed"
    text = {"type": "output_text", "text": "x" * 500, "annotations": [], "logprobs": []}
    response["output"] = [
        {
            "id": new_id("message"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [text],
        }
    ]
    return StoredResponse(response, list(REQUEST.items))


async def main(saves: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(directory)
        try:
            for _ in range(20):
                await store.save(record())
            start = time.perf_counter()
            for _ in range(saves):
                await store.save(record())
            serial = (time.perf_counter() - start) / saves
            start = time.perf_counter()
            await asyncio.gather(*(store.save(record()) for _ in range(saves)))
            concurrent = (time.perf_counter() - start) / saves
        finally:
            await store.close()
    print(f"SQLite (synchronous=FULL): {saves} saves one at a time {serial * 1e3:.3f} ms/save; "
          f"{saves} concurrent {concurrent * 1e3:.3f} ms/save")  # fmt: skip


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each of this process's threads, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def stream_records() -> tuple[StoredResponse, StoredResponse]:
    """A stored stream's two records: `in_progress` with no output, then completed."""
    final = record()
    start = {**final.response, "status": "in_progress", "output": []}
    return StoredResponse(start, final.input_items), final


async def stream_saves(streams: int, concurrency: int) -> None:
    async def one(start: StoredResponse, final: StoredResponse) -> None:
        await store.save(start, durable=False)
        await store.save(final)

    pairs = [stream_records() for _ in range(streams)]
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(directory)
        try:
            await one(*stream_records())  # the threads are started
            before = thread_cpu()
            for i in range(0, streams, concurrency):
                await asyncio.gather(*(one(*pair) for pair in pairs[i : i + concurrency]))
            after = thread_cpu()
        finally:
            await store.close()
    loop_tid = os.getpid()  # the main thread runs the event loop
    loop = after[loop_tid] - before[loop_tid]
    threads = sum(t - before.get(tid, 0.0) for tid, t in after.items() if tid != loop_tid)
    print(f"a stored stream's two saves, {concurrency} at a time: loop "
          f"{loop / streams * 1e6:.0f} us + store threads {threads / streams * 1e6:.0f} us "
          f"of CPU per stream")  # fmt: skip


def nothing() -> Program[None]:
    return None
    yield  # (a program: a generator)


async def round_trips(trips: int) -> None:
    def each(_conn: sqlite3.Connection, jobs: list[_Job]) -> list[None]:
        return [None] * len(jobs)

    lane = _Lane("respgate-bench", sqlite3.connect(":memory:", check_same_thread=False), each)
    try:
        await lane.submit(nothing())  # the thread is started
        start = time.process_time()
        for _ in range(trips):
            await lane.submit(nothing())
        cpu = time.process_time() - start
    finally:
        await lane.close()
    print(f"a round trip to a store thread and back (a job that does nothing): "
          f"{cpu / trips * 1e6:.0f} us of CPU")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--streams", type=int, default=2000)
    args = parser.parse_args()
    uvloop.run(main(args.saves))
    for concurrency in (1, 16):
        uvloop.run(stream_saves(args.streams, concurrency))
    uvloop.run(round_trips(args.streams * 5))
