"""The seam for inbound surfaces other than the Responses API.

Every surface turns the same neutral signals into its own wire events with one sans-IO
builder. The Responses builder (`protocol/builder.py`) always runs too: it keeps the
response's record (store, usage, observers); a surface builder only decides what its
client sees. A surface builder is made per response by a `SurfaceFactory` from the new
Response object (its `id`, `model` and `created_at`) and the name of the provider that
answers (`observe.RunInfo.provider`: what a sealed reasoning carrier is bound to).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .signals import Signal


class SurfaceBuilder(Protocol):
    """Signals in, one surface's wire events out (sans-IO). After `Finish` or `Failure`
    it has emitted its stream's ending; `result()` is then the non-streaming body."""

    def open(self) -> list[dict[str, Any]]:
        """The events that start the stream, before any signal."""
        ...

    def feed(self, signal: Signal) -> list[dict[str, Any]]:
        """The events for one signal."""
        ...

    def result(self) -> dict[str, Any]:
        """The whole answer as the surface returns it without streaming."""
        ...


SurfaceFactory = Callable[[dict[str, Any], str], SurfaceBuilder]
