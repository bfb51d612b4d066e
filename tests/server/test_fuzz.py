"""Whatever a client sends, the answer is a 200 or a 4xx in the OpenAI error shape, never a 500."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from tests.support.oracle import assert_valid_stream, parse_sse

garbage = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.floats(-3, 3, allow_nan=False),
    st.text(max_size=8), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
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
schema = st.fixed_dictionaries(
    {"type": st.just("object"),
     "properties": st.dictionaries(st.sampled_from(["city", "days", "tags", "ok", "unit"]),
        st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "array", "object"])}),
        max_size=3)},
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
    "metadata": st.dictionaries(st.sampled_from(["a", "echo_scenario"]),
                                             st.sampled_from(["x", "fail", "refusal"]), max_size=2),
    "text": st.fixed_dictionaries({"format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])})}),
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


app = create_app(Engine(ProviderRegistry()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.booleans())
async def test_never_a_500(body: dict, stream: bool) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/responses", json={**body, "stream": stream})
    assert r.status_code in (200, 400, 404), r.text
    if r.status_code != 200:
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
    elif stream:
        assert_valid_stream(parse_sse(r.content))
    else:
        assert r.json()["object"] == "response"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
async def test_any_bytes_are_a_400(body: bytes) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(
            "/v1/responses", content=body, headers={"content-type": "application/json"}
        )
    assert r.status_code in (400, 404) or r.status_code == 200, r.text
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
