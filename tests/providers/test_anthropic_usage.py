"""Anthropic usage: cumulative (replaced, never added), cache reads and writes counted into input."""

from __future__ import annotations

import orjson

from respgate.protocol.signals import Usage
from respgate.providers.anthropic import AnthropicTranslator
from respgate.providers.tools import ToolTable


def feed(translator: AnthropicTranslator, event: dict) -> list:
    return translator.feed(event["type"], orjson.dumps(event).decode())


def test_usage_counts_cache_reads_and_writes_into_input_and_replaces() -> None:
    t = AnthropicTranslator(ToolTable(None, "anthropic", []), "anthropic")
    usage = {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 7,
    }
    start = feed(t, {"type": "message_start", "message": {"usage": usage}})
    assert start == [Usage(117, 1, cached_tokens=100, cache_write_tokens=7)]
    delta = feed(
        t,
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 30},
        },
    )
    assert [s for s in delta if isinstance(s, Usage)] == [
        Usage(117, 30, cached_tokens=100, cache_write_tokens=7)
    ]
