"""Unguessable object ids: a wire prefix plus 32 hex digits from the OS CSPRNG."""

from __future__ import annotations

import secrets

PREFIXES = {
    "response": "resp",
    "message": "msg",
    "function_call": "fc",
    "custom_tool_call": "ctc",
    "reasoning": "rs",
    "compaction": "cmp",
    "call": "call",
    "function_call_output": "fco",
}


def new_id(kind: str) -> str:
    """Mint a new id for an object of `kind` (a key of `PREFIXES`)."""
    return f"{PREFIXES[kind]}_{secrets.token_hex(16)}"
