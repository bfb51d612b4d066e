"""What clients carry for us, sealed (`seal.py`): compaction summaries and reasoning state.

- A `compaction` item's `encrypted_content` holds the summary the routed model
  wrote of the context before it; as input it becomes that summary again (a
  user message), on any replica that has the key.
- A reasoning item's `encrypted_content` is respgate's own carrier: what the
  provider that produced it needs to see it again (Anthropic: the signature and
  the thinking text; Chat Completions: the raw reasoning text; a Responses
  upstream: its own `encrypted_content`), bound to the tenant and to that
  provider. As input it is opened into `CARRIER` (the provider's name and the
  payload); `providers.base.for_provider` restores it for that provider only.

Both are opened in `open_context`, which the engine runs over every model context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from .protocol.errors import ApiError, invalid
from .protocol.signals import Compaction, Failure, Finish, Signal, TextDelta, Usage
from .providers.base import CARRIER
from .seal import Sealer, SealError
from .store.base import item_id_for

COMPACTION_INSTRUCTIONS = (
    "You are compacting a conversation so that it can continue in a fresh context window. "
    "Write a concise but complete handoff summary of everything above: the user's goals and "
    "constraints, decisions made, facts and names to remember, work done (files, commands, "
    "results) and what remains to do. Write only the summary."
)
COMPACTION_REQUEST = "Summarise the conversation so far for continuation, as instructed."
COMPACTION_TYPES = frozenset({"compaction", "compaction_summary", "context_compaction"})
SUMMARY_PREFIX = "Summary of the earlier conversation (compacted):\n\n"


def compaction_call_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items a compaction call sends: the (opened) context, then the summary request."""
    return [*items, {"type": "message", "role": "user", "content": COMPACTION_REQUEST}]


def retained(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user messages of a compacted context, as output items (ids, `status`, content
    as parts): kept verbatim next to the summary, as OpenAI's compacted windows do."""
    out = []
    for item in items:
        if item["type"] != "message" or item.get("role") != "user":
            continue
        content = item["content"]
        if isinstance(content, str):
            content = [{"type": "input_text", "text": content}]
        out.append({"id": item.get("id") or item_id_for("message"), "type": "message",
                    "status": "completed", "role": "user", "content": content})  # fmt: skip
    return out


def is_compaction_trigger(items: list[dict[str, Any]]) -> bool:
    return any(item["type"] == "compaction_trigger" for item in items)


async def compacting(
    signals: AsyncIterator[Signal], seal: Callable[[str], str]
) -> AsyncIterator[Signal]:
    """A model's reply turned into one compaction item: its text is the summary
    (sealed by `seal` into the item's `encrypted_content`); reasoning and tool calls
    are dropped; usage, failures and the finish pass on."""
    text: list[str] = []
    try:
        async for signal in signals:
            if isinstance(signal, TextDelta):
                text.append(signal.text)
            elif isinstance(signal, Finish):
                yield Compaction(seal("".join(text).strip()))
                yield signal
                return
            elif isinstance(signal, Usage | Failure):
                yield signal
                if isinstance(signal, Failure):
                    return
    finally:
        aclose = getattr(signals, "aclose", None)
        if aclose is not None:
            await aclose()


def reasoning_payload(item: dict[str, Any]) -> dict[str, Any]:
    """What a finished reasoning item carries: the upstream's opaque state, the summary
    and the raw reasoning text (each only when present)."""
    payload: dict[str, Any] = {}
    if item.get("encrypted_content"):
        payload["opaque"] = item["encrypted_content"]
    summary = "".join(p.get("text", "") for p in item.get("summary") or [])
    if summary:
        payload["summary"] = summary
    raw = "".join(p.get("text", "") for p in item.get("content") or [])
    if raw:
        payload["raw"] = raw
    return payload


def _unsealed_reasoning(
    sealer: Sealer, tenant: str, item: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    blob = item.get("encrypted_content")
    if not isinstance(blob, str) or not blob or CARRIER in item:
        return item
    out = {k: v for k, v in item.items() if k != "encrypted_content"}
    try:
        payload = sealer.open("reasoning", tenant, blob)
    except SealError as err:
        warnings.append(
            f"the encrypted_content of reasoning item {item.get('id') or '(no id)'} was not "
            f"sent upstream: {err}"
        )
        return out
    out[CARRIER] = payload
    return out


def open_context(
    items: list[dict[str, Any]],
    sealer: Sealer,
    tenant: str,
    warnings: list[str],
    param: Callable[[int], str],
) -> list[dict[str, Any]]:
    """The model context with every sealed item opened: a compaction item becomes its
    summary (a 400 naming `param(i).encrypted_content` when it does not open), a reasoning
    carrier is opened for `for_provider` (or left out, with a warning), a compaction
    trigger is left out."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item["type"]
        if kind in COMPACTION_TYPES:
            if item.get("encrypted_content") is not None or kind != "context_compaction":
                out.append(_summary_message(sealer, tenant, item, param(i)))
        elif kind == "reasoning":
            out.append(_unsealed_reasoning(sealer, tenant, item, warnings))
        elif kind != "compaction_trigger":
            out.append(item)
    return out


def _summary_message(
    sealer: Sealer, tenant: str, item: dict[str, Any], param: str
) -> dict[str, Any]:
    try:
        payload = sealer.open("compaction", tenant, item.get("encrypted_content") or "")
    except SealError as err:
        raise invalid(
            f"Invalid compaction item: its encrypted_content cannot be used ({err}).",
            f"{param}.encrypted_content",
            code="invalid_encrypted_content",
        ) from None
    summary = str(payload.get("summary", ""))
    return {"type": "message", "role": "user", "content": SUMMARY_PREFIX + summary}


def compaction_failure(signal: Failure) -> ApiError:
    return ApiError(502, f"The model failed to write the compaction summary: {signal.message}",
                    code=signal.code)  # fmt: skip
