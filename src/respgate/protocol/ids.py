"""Unguessable object ids: a wire prefix plus 32 hex digits from the OS CSPRNG."""

from __future__ import annotations

import secrets

PREFIXES = {
    "response": "resp",
    "conversation": "conv",
    "message": "msg",
    "function_call": "fc",
    "custom_tool_call": "ctc",
    "reasoning": "rs",
    "compaction": "cmp",
    "call": "call",
    "function_call_output": "fco",
    # hosted-tool items normally keep the upstream's id; these name one it left out
    "web_search_call": "ws",
    "file_search_call": "fs",
    "code_interpreter_call": "ci",
    "image_generation_call": "ig",
    "mcp_call": "mcp",
    "mcp_list_tools": "mcpl",
    "mcp_approval_request": "mcpr",
}


def new_id(kind: str) -> str:
    """Mint a new id for an object of `kind` (a key of `PREFIXES`)."""
    return f"{PREFIXES[kind]}_{secrets.token_hex(16)}"
