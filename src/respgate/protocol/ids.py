"""Object ids: a wire prefix, `_`, the second they were minted (8 hex digits) and 32 hex
digits from the OS CSPRNG. The random part makes them unguessable; the time in front
makes them sort by age (as OpenAI's do), so the store's indexes take new ids at their
end instead of at random pages (fewer pages written per commit, fewer read back)."""

from __future__ import annotations

import os
import threading
import time

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
    return mint(PREFIXES[kind])


def mint(prefix: str) -> str:
    """A new id with the wire prefix `prefix`."""
    return f"{prefix}_{int(time.time()):08x}{random_hex()}"


_BLOCK = 4096  # bytes of os.urandom read at a time: 256 draws per system call


class _Entropy(threading.local):
    block = b""
    used = _BLOCK


_entropy = _Entropy()


def random_hex() -> str:
    """32 hex digits (128 bits) from os.urandom, which each thread reads a block at a
    time; a forked child starts with none of its parent's."""
    e = _entropy
    if e.used == _BLOCK:
        e.block, e.used = os.urandom(_BLOCK), 0
    e.used += 16
    return e.block[e.used - 16 : e.used].hex()


def _forget() -> None:
    global _entropy
    _entropy = _Entropy()


os.register_at_fork(after_in_child=_forget)
