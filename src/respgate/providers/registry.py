"""Which model names exist and who serves them: the built-in models plus,
when configured, the upstream router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..protocol.errors import not_found, quote
from ..protocol.request import CreateRequest
from ..protocol.signals import Signal
from .base import ModelCall, for_provider
from .builtin import EchoProvider

BUILTIN = "builtin"  # the provider name of the built-in models


class Upstreams(Protocol):
    """The upstream router (providers/router.py) as the registry sees it."""

    def resolve(self, model: str) -> Any | None: ...

    def models(self) -> list[str]: ...

    def kinds(self, model: str) -> frozenset[str]: ...

    async def open(self, model: str, call: ModelCall) -> AsyncIterator[Signal]: ...

    def route_name(self, model: str) -> str | None: ...

    async def aclose(self) -> None: ...


class ProviderRegistry:
    def __init__(self, upstreams: Upstreams | None = None) -> None:
        self.builtin = {"echo": EchoProvider()}
        self.upstreams = upstreams

    def models(self) -> list[str]:
        names = list(self.builtin)
        if self.upstreams is not None:
            names += [m for m in self.upstreams.models() if m not in self.builtin]
        return names

    def kinds(self, model: str) -> frozenset[str]:
        """The dialects that may answer `model`: `builtin`, or the kinds of its route's
        providers (none when nothing serves it)."""
        if model in self.builtin:
            return frozenset({BUILTIN})
        return frozenset() if self.upstreams is None else self.upstreams.kinds(model)

    def route_name(self, model: str) -> str | None:
        """The bounded name `model` is served under (itself when built in or routed by
        exact name, else the glob that routes it), or None when nothing serves it."""
        if model in self.builtin:
            return model
        return None if self.upstreams is None else self.upstreams.route_name(model)

    def check(self, model: str, request: CreateRequest | None = None) -> None:
        """Raise 404 `model_not_found` before anything else happens (and a built-in
        model's 400 for a `request` it cannot serve)."""
        provider = self.builtin.get(model)
        if provider is not None:
            if request is not None:
                provider.check(request)
            return
        if self.upstreams is not None and self.upstreams.resolve(model) is not None:
            return
        raise not_found(
            f"The model {quote(model)} does not exist or is not routed by this gateway.",
            "model_not_found",
            "model",
        )

    async def open(self, model: str, call: ModelCall) -> AsyncIterator[Signal]:
        provider = self.builtin.get(model)
        if provider is not None:
            return await provider.open(for_provider(call, BUILTIN))
        self.check(model)
        assert self.upstreams is not None
        return await self.upstreams.open(model, call)

    async def aclose(self) -> None:
        if self.upstreams is not None:
            await self.upstreams.aclose()
