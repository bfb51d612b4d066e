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

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..protocol.errors import ApiError
from ..protocol.request import CreateRequest
from ..protocol.signals import Signal


@dataclass(slots=True)
class Attempt:
    """One upstream attempt made while opening a call (before its first byte)."""

    provider: str
    upstream_model: str
    error: ApiError | None = None  # None: this attempt opened the stream


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
