"""The upstream router: public model name -> provider(s), with retries and
fallbacks before the first byte.

    router = Router(load_config(path, os.environ))
    stream = await router.open("gpt-4.1", call)   # raises ApiError before the first byte
    async for signal in stream: ...
    await stream.aclose()                         # cancels the upstream request
    await router.aclose()                         # closes the shared HTTP client

`open` tries the route's primary target, retrying retryable errors (connect
error, timeout, 5xx, 429) with exponential backoff and full jitter (a 429's
`retry-after` is honoured up to `retry_after_cap`; a longer wait moves on at
once), then each fallback the same way. When all fail, the last error is
raised, already mapped by `http.status_error`. Once a stream is open nothing
is retried: text may have reached the client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..config import Config, ProviderConfig, RouteConfig, Target
from ..protocol.errors import not_found, quote
from .anthropic import AnthropicProvider
from .base import Attempt, ModelCall, UpstreamError, for_provider
from .chat_completions import ChatCompletionsProvider
from .http import HttpProvider, SignalStream
from .responses import ResponsesProvider
from .wire import UpstreamClient

log = logging.getLogger(__name__)

PROVIDER_CLASSES: dict[str, type[HttpProvider]] = {
    cls.kind: cls for cls in (ChatCompletionsProvider, AnthropicProvider, ResponsesProvider)
}


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved route: the targets to try, in order."""

    model: str
    targets: tuple[Target, ...]


def make_provider(config: ProviderConfig, client: UpstreamClient) -> HttpProvider:
    return PROVIDER_CLASSES[config.kind](config, client)


class Router:
    def __init__(
        self,
        config: Config,
        *,
        client: UpstreamClient | None = None,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        retry_after_cap: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client or UpstreamClient()
        self.providers = {
            name: make_provider(p, self.client) for name, p in config.providers.items()
        }
        self._exact = {r.model: r for r in config.routes if not r.is_glob}
        self._globs = [r for r in config.routes if r.is_glob]
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_cap = retry_after_cap
        self._sleep = sleep

    def _route(self, model: str) -> RouteConfig | None:
        """Exact names first, then globs in configuration order."""
        return self._exact.get(model) or next((r for r in self._globs if r.matches(model)), None)

    def route_name(self, model: str) -> str | None:
        """The name `model` is routed under: itself, or the glob that matches it."""
        route = self._route(model)
        return None if route is None else route.model

    def resolve(self, model: str) -> Route | None:
        route = self._route(model)
        if route is None:
            return None
        primary = Target(route.provider, route.upstream_model or model)
        fallbacks = tuple(Target(t.provider, t.upstream_model or model) for t in route.fallbacks)
        return Route(model, (primary, *fallbacks))

    def kinds(self, model: str) -> frozenset[str]:
        """The dialects of the providers `model`'s route may use (primary and fallbacks)."""
        route = self.resolve(model)
        targets = route.targets if route is not None else ()
        return frozenset(self.providers[t.provider].kind for t in targets)

    def models(self) -> list[str]:
        """The exact public names routed (globs name no model, so they are not listed)."""
        return list(self._exact)

    async def open(self, model: str, call: ModelCall) -> SignalStream:
        route = self.resolve(model)
        if route is None:
            raise not_found(
                f"The model {quote(model)} does not exist or is not routed by this gateway.",
                "model_not_found",
                "model",
            )
        last: UpstreamError | None = None
        for target in route.targets:
            provider = self.providers[target.provider]
            target_call = for_provider(
                dataclasses.replace(call, model=target.upstream_model), provider.name
            )
            for attempt in range(provider.config.max_retries + 1):
                tried = Attempt(provider.name, target.upstream_model)
                call.attempts.append(tried)
                try:
                    return await provider.open(target_call)
                except UpstreamError as err:
                    last = err
                    tried.error = err.code or "upstream_error"
                    log.warning(
                        "provider %s, model %s, attempt %d: %s",
                        provider.name,
                        target.upstream_model,
                        attempt + 1,
                        err.message,
                    )
                    delay = self.retry_delay(err, attempt)
                    if delay is None or attempt == provider.config.max_retries:
                        break
                    await self._sleep(delay)
        assert last is not None
        try:
            raise last
        finally:
            last = None  # not held by a frame of its own traceback (a reference cycle)

    def retry_delay(self, err: UpstreamError, attempt: int) -> float | None:
        """Seconds to wait before retrying `err`, or None to move on to the next target."""
        if not err.retryable:
            return None
        delay = random.uniform(0, min(self._backoff_max, self._backoff_base * 2**attempt))
        retry_after = _seconds(err.headers.get("retry-after"))
        if retry_after is not None:
            if retry_after > self._retry_after_cap:
                return None
            delay = max(delay, retry_after)
        return delay

    async def aclose(self) -> None:
        await self.client.aclose()


def _seconds(value: str | None) -> float | None:
    """`retry-after` as seconds (only the delta-seconds form; an HTTP date counts as unknown)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
