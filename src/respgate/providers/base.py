"""What every provider implements, and what the engine hands it.

A provider is opened in two phases so that upstream failures before the first
byte can still become a plain HTTP error (and be retried or fall back):

1. `await provider.open(call)` sends the upstream request and waits for its
   response headers. Failure here raises `UpstreamError` (status mapped, the
   upstream key never echoed); nothing has been sent to the client yet.
2. The returned async iterator yields neutral signals (`protocol.signals`).
   After this point failures are signals: the provider yields `Failure(...)`
   (or raises, and the engine turns the exception into a `Failure`). `Finish`
   is the last signal and comes after the final `Usage`. An iterator that ends
   without `Finish` or `Failure` means the upstream stream was cut short.

Closing the iterator (`aclose()`) must cancel the upstream request promptly.
The iterator may carry `warnings: list[str]` (request translation notes, such
as hosted tools dropped), which the server returns in `x-respgate-warning`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.errors import ApiError
from ..protocol.request import CreateRequest
from ..protocol.signals import Signal

log = logging.getLogger("respgate.providers")


async def close_quietly(signals: AsyncIterator[object]) -> None:
    """Close a signal stream (a provider's, or a wrapper of one) if it can be closed; a
    failure while closing is logged, never raised (the run has its ending already)."""
    aclose = getattr(signals, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.exception("closing a provider stream failed")


# Key of a reasoning carrier the engine opened (`carry.py`): {"provider", and what that
# provider needs}. `for_provider` consumes it; it never goes upstream.
CARRIER = "_respgate_carrier"


@dataclass(slots=True)
class Attempt:
    """One upstream attempt made while opening a call (before its first byte)."""

    provider: str
    upstream_model: str
    # The failed attempt's error code; None: this attempt opened the stream. (A code, not
    # the exception: the run's frames hold their attempts, and an exception held by what
    # its traceback's frames hold is a reference cycle per failed request.)
    error: str | None = None


@dataclass(slots=True)
class ModelCall:
    """One model invocation.

    `items` is the whole model context in order: every earlier turn's input
    and output items (from `previous_response_id`), then this request's input,
    normalised (each item has `type`; `item_reference`s resolved).
    `instructions` are this request's only; they are never carried over.
    `attempts` is filled in by whoever opens the call (the router: one entry per
    upstream attempt, retries and fallbacks included; shared by every per-target copy).
    """

    request: CreateRequest
    items: list[dict[str, Any]]
    model: str
    instructions: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    # Notes for `x-respgate-warning` made while preparing the call (carriers dropped).
    warnings: list[str] = field(default_factory=list)


def for_provider(call: ModelCall, provider: str) -> ModelCall:
    """`call` as `provider` gets it: every reasoning carrier opened by the engine
    (`carry.CARRIER`) restored when `provider` sealed it, else left out with a warning
    (another provider's signature or encrypted content must never reach this one)."""
    if not any(CARRIER in item for item in call.items):
        return call
    items = []
    for item in call.items:
        payload = item.get(CARRIER)
        if payload is None:
            items.append(item)
            continue
        out = {k: v for k, v in item.items() if k != CARRIER}
        if payload.get("provider") != provider:
            note = (
                f"the encrypted_content of reasoning item {item.get('id') or '(no id)'} was "
                f"made by provider {payload.get('provider')!r} and was not sent to {provider!r}"
            )
            if note not in call.warnings:
                call.warnings.append(note)
        else:
            if "opaque" in payload:
                out["encrypted_content"] = payload["opaque"]
            if "summary" in payload:
                out["summary"] = [{"type": "summary_text", "text": payload["summary"]}]
            if "raw" in payload:
                out["content"] = [{"type": "reasoning_text", "text": payload["raw"]}]
        items.append(out)
    return dataclasses.replace(call, items=items)


class UpstreamError(ApiError):
    """The upstream failed before its stream began."""

    retryable: bool = False


def upstream_error(
    status: int,
    message: str,
    *,
    code: str = "upstream_error",
    retryable: bool = False,
    headers: dict[str, str] | None = None,
) -> UpstreamError:
    err = UpstreamError(status, message, code=code, headers=headers or {})
    err.retryable = retryable
    return err


class Provider(Protocol):
    """One upstream dialect. Implementations live in `providers/<dialect>.py`."""

    async def open(self, call: ModelCall) -> AsyncIterator[Signal]: ...

    async def aclose(self) -> None: ...
