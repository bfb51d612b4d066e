"""Request decoding cost: `parse_create_request` on a Codex-sized body, split into msgspec's
typed decode, the value limits (nesting depth, 64-bit integers) and the schema structure
check of every function tool. Prints numbers; asserts nothing.

    .venv/bin/python bench/bench_request.py [--tools 20] [--turns 40] [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from respgate.protocol import request


def codex_like(tools: int, turns: int) -> bytes:
    """A body like an agent's late turn: instructions, `turns` call/output rounds, tools."""
    props = {
        f"p{i}": {"type": "string", "description": "x" * 80, "enum": ["a", "b"]} for i in range(8)
    }
    props["nested"] = {
        "type": "object",
        "properties": {"q": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
        "required": ["q"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": props,
        "required": ["p1"],
        "additionalProperties": False,
    }
    items: list[dict] = []
    for i in range(turns):
        items.append({"role": "user", "content": [{"type": "input_text", "text": "hello " * 100}]})
        items.append({"type": "function_call", "call_id": f"c{i}", "name": "t1", "arguments": "{}"})
        items.append({"type": "function_call_output", "call_id": f"c{i}", "output": "out " * 200})
    body = {
        "model": "echo",
        "instructions": "be brief " * 100,
        "input": items,
        "tools": [
            {"type": "function", "name": f"t{i}", "description": "d" * 200, "parameters": schema}
            for i in range(tools)
        ],
        "stream": True,
    }
    return orjson.dumps(body)


def best_of(repeat: int, n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", type=int, default=20)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    body = codex_like(args.tools, args.turns)
    req = request._decoder.decode(body)
    schemas = [t["parameters"] for t in req.tools or []]
    n = 100
    cases = {
        "parse_create_request (all of it)": lambda: request.parse_create_request(body),
        "  msgspec typed decode": lambda: request._decoder.decode(body),
        "  value limits (depth, 64-bit ints)": lambda: request._check_request(req),
        "  schema structure, every tool": lambda: [request.schema_problem(s) for s in schemas],
    }
    print(
        f"body: {len(body):,} bytes, {args.tools} function tools, {3 * args.turns} input items; "
        f"Python {sys.version.split()[0]}, best of {args.repeat} x {n}"
    )
    for name, fn in cases.items():
        print(f"{name:<40} {best_of(args.repeat, n, fn) * 1e6:8.0f} us")


if __name__ == "__main__":
    main()
