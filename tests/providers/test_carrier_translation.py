"""Restoring reasoning carriers per provider (`for_provider`) and sending reasoning back
to Chat Completions upstreams (`send_reasoning`)."""

from __future__ import annotations

from respgate.providers.base import CARRIER, for_provider
from respgate.providers.chat_completions import request_body

from .support import call_of, request

CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "ok"}


def reasoning(text: str) -> dict:
    return {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def test_reasoning_goes_back_with_the_assistant_turn_it_opened() -> None:
    items = [
        {"type": "message", "role": "user", "content": "q"},
        reasoning("first I call f"), CALL, OUTPUT,
        reasoning("now I answer"),
        {"type": "message", "role": "assistant", "content": "done"},
        reasoning("dangling, never followed by an answer"),
        {"type": "message", "role": "user", "content": "again"},
    ]  # fmt: skip
    call = call_of(request(), items)
    sent = request_body(call, "p", [], send_reasoning=True)["messages"]
    assert [(m["role"], m.get("reasoning_content")) for m in sent] == [
        ("user", None),
        ("assistant", "first I call f"),
        ("tool", None),
        ("assistant", "now I answer"),
        ("user", None),
    ]
    assert "reasoning_content" not in str(request_body(call, "p", [])["messages"])


def test_a_carrier_is_restored_for_its_provider_only() -> None:
    item = {"type": "reasoning", "id": "rs_1", "summary": [],
            CARRIER: {"provider": "claude", "opaque": "sig", "summary": "thought"}}  # fmt: skip
    call = call_of(request(), [item])
    mine = for_provider(call, "claude").items[0]
    assert mine == {"type": "reasoning", "id": "rs_1", "encrypted_content": "sig",
                    "summary": [{"type": "summary_text", "text": "thought"}]}  # fmt: skip
    other = for_provider(call, "openai")
    assert other.items[0] == {"type": "reasoning", "id": "rs_1", "summary": []}
    assert call.warnings == [
        "the encrypted_content of reasoning item rs_1 was made by provider 'claude' and was "
        "not sent to 'openai'"
    ]
    for_provider(call, "openai")  # a retry: the same warning once
    assert len(call.warnings) == 1
