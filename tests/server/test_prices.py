"""Pricing a run's usage (`RunInfo.cost`): no price or no usage is None, never $0."""

from __future__ import annotations

import pytest

from respgate.observe import RunInfo
from respgate.protocol.response import usage_object
from respgate.usage import Price, Prices

PRICES = Prices({"gpt-4o": Price(2.5, 1.25, 10.0), "claude-*": Price(3.0, 0.3, 15.0)})


def run(model: str, usage: dict | None, upstream: str | None = None) -> RunInfo:
    info = RunInfo("t", model, "sse", upstream_model=upstream)
    info.usage = usage
    return info


def test_cached_input_is_billed_at_its_own_price_and_reasoning_as_output() -> None:
    usage = usage_object(1000, 500, cached_tokens=600, reasoning_tokens=200)
    assert PRICES.cost(run("gpt-4o", usage)) == pytest.approx(
        (400 * 2.5 + 600 * 1.25 + 500 * 10.0) / 1e6
    )
    # priced by the upstream model when the public name has no price
    assert PRICES.cost(run("my-alias", usage, upstream="claude-sonnet")) == pytest.approx(
        (400 * 3.0 + 600 * 0.3 + 500 * 15.0) / 1e6
    )


def test_no_price_or_no_usage_is_unknown_not_zero() -> None:
    assert PRICES.cost(run("llama", usage_object(10, 10))) is None
    assert PRICES.cost(run("gpt-4o", None)) is None
    assert PRICES.cost(run("gpt-4o", usage_object(0, 0))) == 0.0
