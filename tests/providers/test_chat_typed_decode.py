"""The typed decoding of Chat Completions chunks (the fast path) gives exactly the
signals of the general dict path, for common and odd chunk shapes alike."""

from __future__ import annotations

import orjson
import pytest

from respgate.providers import tools
from respgate.providers.chat_completions import ChatTranslator
from respgate.providers.tools import ToolTable

CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]},
    {"choices": [{"delta": {"reasoning_content": "think"}}]},
    {"choices": [{"delta": {"reasoning_content": "", "reasoning": "r"}}]},
    {"choices": [{"delta": {"reasoning": {"not": "text"}}}]},
    {"choices": [{"delta": {"content": ["odd"]}}]},
    {"choices": [{"delta": {"refusal": "no"}}]},
    {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
    {"choices": [{"index": None, "delta": {"content": "x"}}]},
    {"choices": [{"delta": None, "finish_reason": "length"}]},
    {"choices": [{"delta": {}, "finish_reason": 7}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    {"choices": None, "usage": {}},
    {"choices": [], "usage": 0},
    {"error": {"message": "boom", "type": "server_error"}},
    {"object": "error", "message": "flat", "code": "x"},
    {"error": "", "choices": [{"delta": {"content": "falsy error"}}]},
    [1, 2],
    "text",
]


def signals(data: str, *, typed: bool) -> list[object]:
    translator = ChatTranslator(ToolTable(None, "p", []), "p")
    try:
        out = translator.feed("message", data) if typed else translator._feed_dict(data)
    except Exception as exc:  # the same crash on both paths counts as the same result
        return [type(exc).__name__]
    return [*out, translator._finish]


@pytest.mark.parametrize("chunk", CHUNKS, ids=range(len(CHUNKS)))
def test_typed_path_matches_dict_path(chunk: object, monkeypatch: pytest.MonkeyPatch) -> None:
    # a call without an upstream id gets a minted one: the same one on both paths here
    monkeypatch.setattr(tools, "new_id", lambda prefix: f"{prefix}_minted")
    data = orjson.dumps(chunk).decode()
    assert signals(data, typed=True) == signals(data, typed=False)


@pytest.mark.parametrize("data", ['{"choices": [', '"\\ud800"', "1e400", '{"a":1}x'])
def test_malformed_chunks_fail_the_same_way(data: str) -> None:
    assert signals(data, typed=True) == signals(data, typed=False)
