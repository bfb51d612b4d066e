"""SQLite save latency one at a time and concurrent (group commit). Prints numbers.

python bench/bench_saves.py [--saves 200]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from respgate.protocol.ids import new_id
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.store import open_store
from respgate.store.base import StoredResponse

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=200)
    asyncio.run(main(parser.parse_args().saves))
