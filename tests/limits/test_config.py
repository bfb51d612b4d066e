"""`[limits]`, per-key limits and `[prices]`: the typed sections become the engine's
limits and prices; wrong values stop start-up naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from respgate.cli import limits_and_prices, main
from respgate.config import ConfigError, parse_config
from respgate.limits import Quota
from respgate.limits.redis import RedisCounters
from respgate.store.keys import ApiKeys
from respgate.usage import Price

KEY = "sk-config-test-0123456789"


def test_the_tables_become_limits_and_prices() -> None:
    config = parse_config(
        {
            "limits": {
                "requests_per_minute": 60,
                "concurrent_streams": 2,
                "redis_url": "redis://127.0.0.1:6379/0",
                "on_redis_error": "closed",
            },
            "prices": {"gpt-4o*": {"input": 2.5, "output": 10}, "gpt-4o-mini": {"input": 1}},
        },
        {},
    )
    limits, prices = limits_and_prices(config)
    assert limits.defaults == Quota(60, 0, 2) and limits.on_error == "closed"
    assert isinstance(limits.counters, RedisCounters)
    assert prices.price_for("gpt-4o-2024-08-06") == Price(2.5, 2.5, 10.0)
    assert prices.price_for("gpt-4o-mini") == Price(1.0, 1.0, 0.0)  # exact name first
    assert prices.price_for("o3") is None


@pytest.mark.parametrize(
    ("tables", "named"),
    [
        ({"limits": {"requests_per_minute": -1}}, "limits.requests_per_minute"),
        ({"limits": {"tokens_per_minute": "many"}}, "limits.tokens_per_minute"),
        ({"limits": {"on_redis_error": "maybe"}}, "limits.on_redis_error"),
        ({"limits": {"redis_url": "http://x"}}, "limits.redis_url"),
        ({"prices": {"m": {"input": "cheap"}}}, 'prices.m.input'),
        ({"prices": {"m": {"inptu": 1}}}, 'prices.m.inptu'),
        ({"prices": {"m": 3}}, 'prices.m'),
        ({"keys": [{"tenant": "a", "key": KEY, "concurrent_streams": True}]},
         r"keys[0].concurrent_streams"),
    ],
)  # fmt: skip
def test_a_wrong_value_names_its_key(tables: dict, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(tables, {})
    assert str(caught.value).startswith(named), str(caught.value)


def test_a_keys_own_limits_reach_the_key() -> None:
    config = parse_config({"keys": [{"tenant": "a", "key": KEY, "tokens_per_minute": 10}]}, {})
    found = ApiKeys.from_config(config.keys).lookup(f"Bearer {KEY}")
    assert found is not None and found.limits == {"tokens_per_minute": 10}
    assert len(found.id) == 16


def test_serve_refuses_a_wrong_limit_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text('[limits]\non_redis_error = "sometimes"\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert "limits.on_redis_error" in capsys.readouterr().err
