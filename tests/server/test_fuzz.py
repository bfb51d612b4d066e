"""Whatever a client sends, the answer is a 200 or a 4xx in the OpenAI error shape, never a 500:
bodies against a real server (uvicorn on 127.0.0.1, SQLite store), each sent streaming and not."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse
from tests.support.stores import sqlite_engine

# Values JSON can write but Python's json module cannot (numbers beyond a double, nesting
# deeper than its recursion limit): drawn as a placeholder string, spliced in as raw JSON.
RAW = "\x00raw:"


def raw(text: str) -> str:
    return f"{RAW}{text}\x00"


def to_json(body: dict) -> bytes:
    text = json.dumps(body)
    return re.sub(r'"\\u0000raw:(.*?)\\u0000"', lambda m: m[1], text).encode()


def nested(depth: int) -> str:
    return raw("[" * depth + "]" * depth)


# Integers at and beyond what 64 bits carry, numbers beyond a double, deep nesting.
big_numbers = st.one_of(
    st.sampled_from([2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30]),
    st.integers(min_value=2**64), st.integers(max_value=-(2**63) - 1),
    st.sampled_from([raw("1e400"), raw("-1e999"), raw("9" * 400), raw("-" + "9" * 5000)]),
)  # fmt: skip
deep = st.integers(100, 3000).map(nested)
garbage = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.floats(-3, 3, allow_nan=False),
    st.text(max_size=8), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    big_numbers, deep,
)  # fmt: skip


def maybe_broken(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a valid value, sometimes anything (nested inside items and tools)."""
    return st.one_of(*[valid] * 9, garbage)


text = st.text(max_size=12)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("output_text"), "text": text}),
    st.fixed_dictionaries(
        {"type": st.just("input_image"), "image_url": st.just("data:image/png;base64,AAAA")}
    ),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": text}),
    st.dictionaries(st.sampled_from(["type", "text", "detail"]), garbage, max_size=3),
)
message = st.fixed_dictionaries(
    {"role": maybe_broken(st.sampled_from(["user", "assistant", "system", "developer"])),
     "content": maybe_broken(st.one_of(text, st.lists(part, max_size=3)))},
    optional={"type": st.just("message"), "id": text, "phase": st.sampled_from(["commentary", "final_answer"])},
)  # fmt: skip
call = st.fixed_dictionaries(
    {"type": st.just("function_call"), "call_id": maybe_broken(st.just("call_1")),
     "name": maybe_broken(st.just("get_weather")), "arguments": maybe_broken(st.just("{}"))}
)  # fmt: skip
output = st.fixed_dictionaries(
    {"type": st.just("function_call_output"), "call_id": st.just("call_1"),
     "output": maybe_broken(st.one_of(text, st.lists(part, max_size=2)))}
)  # fmt: skip
reasoning = st.fixed_dictionaries(
    {"type": st.just("reasoning"), "summary": maybe_broken(st.lists(
        st.fixed_dictionaries({"type": st.just("summary_text"), "text": text}), max_size=2))},
    optional={"encrypted_content": text},
)  # fmt: skip
items = st.lists(st.one_of(message, message, call, output, reasoning), min_size=1, max_size=4)
property_schema = st.fixed_dictionaries(
    {"type": maybe_broken(st.sampled_from(["string", "integer", "number", "boolean", "array", "object"]))},
    optional={"minimum": maybe_broken(st.integers(-3, 3)), "maxLength": maybe_broken(st.integers(0, 9)),
              "enum": maybe_broken(st.lists(st.integers(), min_size=1, max_size=2)),
              "items": maybe_broken(st.fixed_dictionaries({"type": st.just("string")}))},
)  # fmt: skip
schema = st.fixed_dictionaries(
    {"type": st.just("object"),
     "properties": st.dictionaries(st.sampled_from(["city", "days", "tags", "ok", "unit"]),
        maybe_broken(st.one_of(property_schema, st.booleans())), max_size=3)},
    optional={"required": maybe_broken(st.lists(st.sampled_from(["city", "days"]), max_size=2))},
)  # fmt: skip
tool = st.one_of(
    st.fixed_dictionaries({"type": st.just("function"), "name": st.sampled_from(["get_weather", "get_time"]),
                           "parameters": maybe_broken(schema)}),
    st.fixed_dictionaries({"type": st.sampled_from(["web_search", "tool_search"])}),
    st.fixed_dictionaries({"type": st.just("custom"), "name": st.just("apply_patch")}),
    st.fixed_dictionaries({"type": st.just("namespace"), "name": st.just("fs"), "description": st.just("Files."),
                           "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "name": st.just("read")}), max_size=2)}),
)  # fmt: skip
FIELDS = {
    "instructions": text,
    "tools": st.lists(tool, max_size=3),
    "tool_choice": st.sampled_from(["auto", "none", "required"]),
    "parallel_tool_calls": st.booleans(),
    "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "medium", "high", "none"])}),
    "max_output_tokens": st.integers(1, 40),
    "temperature": st.floats(0, 2),
    "metadata": st.one_of(
        st.dictionaries(st.sampled_from(["a", "echo_scenario"]), st.sampled_from(["x", "fail", "refusal", "long"]), max_size=2),
        st.dictionaries(st.sampled_from(["echo_tokens", "echo_delay_ms"]),
                        st.sampled_from(["x", "", "0", "3", "-1", "1.5", "100000000000", "\u0663"]), max_size=2)),
    "text": st.fixed_dictionaries({"format": st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
        st.fixed_dictionaries({"type": st.just("json_schema"), "name": st.just("out"), "schema": maybe_broken(schema)}))}),
    "include": st.lists(st.just("reasoning.encrypted_content"), max_size=1),
    "client_metadata": garbage,
}  # fmt: skip


def mutate(body: dict, mutation: tuple[str, object] | None) -> dict:
    if mutation is not None:
        body[mutation[0]] = mutation[1]
    return body


# A valid-looking body, and half the time one top-level field replaced by anything.
bodies = st.builds(
    mutate,
    st.fixed_dictionaries(
        {"model": st.just("echo"), "input": st.one_of(text, items)}, optional=FIELDS
    ),
    st.one_of(st.none(), st.tuples(st.sampled_from(["model", "input", *FIELDS]), garbage)),
)


# CI runs the same examples every time (derandomize) plus the shapes that once gave a 500
# (@example). RESPGATE_FUZZ_EXAMPLES=10000 explores new ground with a random seed instead:
#   RESPGATE_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/server/test_fuzz.py -s
LONG_RUN = int(os.environ.get("RESPGATE_FUZZ_EXAMPLES", "0"))
fuzz_settings = settings(
    max_examples=LONG_RUN or 300,
    derandomize=not LONG_RUN,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
statuses: Counter[tuple[bool, int]] = Counter()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server (uvicorn on 127.0.0.1) with a SQLite store: every layer a body reaches."""
    with LiveServer(sqlite_engine(tmp_path_factory.mktemp("fuzz"))) as server:
        yield server
    if statuses:
        summary = ", ".join(
            f"{'sse' if s else 'json'} {code}: {n}" for (s, code), n in sorted(statuses.items())
        )
        print(f"\nfuzz: {sum(statuses.values())} requests; {summary}")


SEEN_500 = [
    {"model": "echo", "input": "hi", "max_output_tokens": 2**64},
    {"model": "echo", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters":
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": 2**64}}}}]},
    {"model": "echo", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters":
        {"type": "object", "properties": {"a": {"type": "number", "minimum": raw("1e400")}}}}]},
    {"model": "echo", "input": "hi", "client_metadata": nested(1000)},
    {"model": "echo", "input": [{"role": "user", "content": nested(10_000)}]},
    {"model": "echo", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters":
        {"type": "object", "properties": {"a": 5}}}]},
    {"model": "echo", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x",
        "schema": {"type": "object", "properties": {"a": 5}}}}},
    {"model": "echo", "input": "hi", "metadata": {"echo_scenario": "long", "echo_tokens": "x"}},
]  # fmt: skip


def fuzz_examples(test):  # type: ignore[no-untyped-def]
    for body in SEEN_500:
        test = example(body)(test)
    return test


@pytest.mark.timeout(0 if LONG_RUN else 600)  # hundreds of real requests
@fuzz_examples
@fuzz_settings
@given(bodies)
def test_never_a_500(live: LiveServer, body: dict) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as c:
        for stream in (False, True):
            r = c.post(
                "/v1/responses",
                content=to_json({**body, "stream": stream}),
                headers={"content-type": "application/json"},
            )
            statuses[stream, r.status_code] += 1
            assert r.status_code in (200, 400, 404), r.text[:500]
            if r.status_code != 200:
                error = r.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}
                assert error["message"]
                assert "Error)" not in error["message"]
            elif stream:
                assert_valid_stream(parse_sse(r.content))
            else:
                response = r.json()
                assert response["object"] == "response"
                if response["status"] == "failed":  # only the scripted failure
                    assert "echo_scenario=fail" in response["error"]["message"], response["error"]


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_a_400(live: LiveServer, body: bytes) -> None:
    r = httpx.post(
        f"{live.url}/v1/responses",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code in (400, 404) or r.status_code == 200, r.text
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
