"""Usage accounting: every finished response's tokens and cost, per tenant and model.

`UsageLog` is an observer: at each terminal event (streamed or not, stored or not,
background, WebSocket) it queues one `UsageRecord` and a writer task commits the
queue in batches, off the hot path; `aclose()` (at shutdown, before the store
closes) writes what is left. `Prices` turns usage into USD from the `[prices]`
table: cached input tokens at `cached_input`, the rest of the input at `input`,
output (reasoning included) at `output`, all per million tokens.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import PriceConfig
from .observe import Observer, RunInfo
from .store.base import ResponseStore, UsageRecord

log = logging.getLogger("respgate.usage")

RETRY_SECONDS = 1.0
GATHER_SECONDS = 0.2  # a usage batch waits this long for more records


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float


class Prices:
    """Model name or glob -> `Price`; an exact name wins over globs, globs go in order."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices = dict(prices or {})

    @classmethod
    def from_config(cls, table: Mapping[str, PriceConfig]) -> Prices:
        """From the typed `[prices]` table (an unset `cached_input` is priced as `input`)."""
        return cls(
            {
                model: Price(
                    p.input, p.input if p.cached_input is None else p.cached_input, p.output
                )
                for model, p in table.items()
            }
        )

    def price_for(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        for pattern, price in self.prices.items():
            if fnmatch.fnmatchcase(model, pattern):
                return price
        return None

    def cost(self, run: RunInfo) -> float | None:
        """The run's cost, priced by its public model name, else by the upstream model's;
        None without usage or without a price."""
        price = self.price_for(run.model) or self.price_for(run.upstream_model)
        if price is None or not run.usage:
            return None
        return cost_of(run.usage, price)


def tokens_of(usage: Mapping[str, Any] | None) -> tuple[int, int, int, int]:
    """(input, cached input, output, reasoning) tokens of a Response `usage` object."""
    if not usage:
        return 0, 0, 0, 0
    return (
        int(usage.get("input_tokens") or 0),
        int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
    )


def cost_of(usage: Mapping[str, Any], price: Price) -> float:
    input_tokens, cached, output, _ = tokens_of(usage)
    cached = min(cached, input_tokens)
    return (
        (input_tokens - cached) * price.input + cached * price.cached_input + output * price.output
    ) / 1e6


class UsageLog(Observer):
    """Records every finished response in the store (`store_of()`; nothing without one)."""

    def __init__(
        self,
        store_of: Callable[[], ResponseStore | None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store_of = store_of
        self._clock = clock
        self._pending: list[UsageRecord] = []
        self._writer: asyncio.Task[None] | None = None

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        if self._store_of() is None:
            return
        input_tokens, cached, output, reasoning = tokens_of(run.usage)
        self._pending.append(
            UsageRecord(
                response_id=run.response_id or "",
                tenant=run.tenant,
                model=run.model,
                provider=run.provider,
                upstream_model=run.upstream_model,
                transport=run.transport,
                status=run.status,
                created_at=int(self._clock()),
                input_tokens=input_tokens,
                cached_tokens=cached,
                output_tokens=output,
                reasoning_tokens=reasoning,
                cost=run.cost,
            )
        )
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Commit everything queued, batch after batch, each gathered for `GATHER_SECONDS`
        (one transaction for many responses, not one per response); on a store error keep
        the batch and try again a second later (nothing is dropped while the process
        lives; `aclose` writes what is queued)."""
        while self._pending:
            await asyncio.sleep(GATHER_SECONDS)
            store = self._store_of()
            if store is None:
                return
            batch, self._pending = self._pending, []
            try:
                await store.record_usage(batch)
            except Exception as exc:
                log.warning("writing %d usage records failed (retrying): %s", len(batch), exc)
                self._pending[:0] = batch
                await asyncio.sleep(RETRY_SECONDS)

    async def aclose(self) -> None:
        """Write what is queued (bounded: a store that stays down loses the queue, logged)."""
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 10)
            except TimeoutError:
                self._writer.cancel()
        if self._pending:
            log.error(
                "%d usage records could not be written: %s",
                len(self._pending),
                [r.response_id for r in self._pending],
            )
