"""Usage accounting through a real server: every response's tokens (cached and reasoning
included) and cost reach the store, streamed or not, stored or not, background or
WebSocket; `respgate usage` prints them, also after a clean shutdown."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from websockets.asyncio.client import connect

from respgate.cli import main
from respgate.engine import Engine
from respgate.observe import Observer, RunInfo
from respgate.providers.registry import ProviderRegistry
from respgate.store import open_store, read_usage
from respgate.store.base import UsageTotal
from respgate.usage import Price, Prices
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.support.live import SRC, LiveServer, running

PRICE = Price(input=2.5, cached_input=1.25, output=10.0)


class Finished(Observer):
    def __init__(self) -> None:
        self.runs: list[RunInfo] = []

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        self.runs.append(run)


async def recorded(data: Path, count: int) -> list[UsageTotal]:
    """The usage totals once `count` responses are recorded (written off the hot path)."""
    deadline = time.monotonic() + 10
    while True:
        rows = await read_usage(data)
        if sum(r.requests for r in rows) >= count:
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.02)


def engine_for(data: Path, router: Any = None, **prices: Price) -> tuple[Engine, Finished]:
    finished = Finished()
    engine = Engine(
        ProviderRegistry(router),
        store=functools.partial(open_store, data),
        observers=[finished],
        prices=Prices(prices),
    )
    return engine, finished


async def test_a_streamed_chat_completions_response_keeps_its_cached_tokens_and_cost(
    tmp_path: Path,
) -> None:
    body = fixture("chat_completions", "text").replace(
        b'"cached_tokens":0', b'"cached_tokens":8'
    )  # 12 input tokens, 8 of them cached; 3 output tokens
    async with FakeUpstream(Reply(body)) as upstream:
        engine, finished = engine_for(
            tmp_path / "data", router_for("chat_completions", upstream.url), m=PRICE
        )
        with LiveServer(engine) as server:
            client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
            stream = await client.responses.create(model="m", input="hi", stream=True)
            final = [e async for e in stream][-1]
            assert final.type == "response.completed"
            assert final.response.usage.input_tokens_details.cached_tokens == 8
            rows = await recorded(tmp_path / "data", 1)
    expected = (4 * 2.5 + 8 * 1.25 + 3 * 10.0) / 1e6
    assert rows == [UsageTotal("", "m", 1, 12, 8, 3, 0, pytest.approx(expected))]
    (run,) = finished.runs
    assert run.cost == pytest.approx(expected) and run.transport == "sse"


async def test_streamed_anthropic_cache_reads_are_counted_and_priced_by_upstream_model(
    tmp_path: Path,
) -> None:
    body = fixture("anthropic", "text").replace(
        b'"cache_read_input_tokens":0', b'"cache_read_input_tokens":20'
    )  # 25 fresh + 20 cache-read input tokens, 3 output tokens
    async with FakeUpstream(Reply(body)) as upstream:
        engine, finished = engine_for(
            tmp_path / "data", router_for("anthropic", upstream.url), **{"upstream-*": PRICE}
        )
        with LiveServer(engine) as server:
            client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
            stream = await client.responses.create(model="m", input="hi", stream=True)
            assert [e async for e in stream][-1].type == "response.completed"
            rows = await recorded(tmp_path / "data", 1)
    expected = (25 * 2.5 + 20 * 1.25 + 3 * 10.0) / 1e6
    assert rows == [UsageTotal("", "m", 1, 45, 20, 3, 0, pytest.approx(expected))]
    assert finished.runs[0].upstream_model == "upstream-m"


async def test_every_transport_is_recorded_stored_or_not(tmp_path: Path) -> None:
    engine, finished = engine_for(tmp_path / "data", echo=PRICE)
    with LiveServer(engine) as server:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        await client.responses.create(model="echo", input="one two", store=False)
        stream = await client.responses.create(model="echo", input="one two", stream=True)
        _ = [e async for e in stream]
        queued = await client.responses.create(model="echo", input="one two", background=True)
        async with connect(server.ws_url) as ws:
            await ws.send(json.dumps({"type": "response.create", "model": "echo", "input": "one"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "response.completed":
                pass
        rows = await recorded(tmp_path / "data", 4)
    transports = sorted(run.transport for run in finished.runs)
    assert transports == ["background", "json", "sse", "websocket"]
    assert queued.status == "queued"
    (row,) = rows
    assert row.requests == 4 and row.output_tokens == sum(
        run.usage["output_tokens"] for run in finished.runs if run.usage
    )
    assert row.output_tokens > 0 and row.cost is not None and row.cost > 0
    assert all(run.cost is not None and run.cost > 0 for run in finished.runs)


def test_usage_is_written_by_a_clean_shutdown_and_printed_by_respgate_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-usage-team-a-0123456789"
    config = tmp_path / "respgate.toml"
    config.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
        '[[keys]]\ntenant = "team-a"\nkey_env = "USAGE_KEY"\n\n'
        "[prices.echo]\ninput = 1.0\noutput = 2.0\n"
    )
    with running({"USAGE_KEY": key}, "--config", str(config)) as server, server.client() as c:
        for i in range(5):
            r = c.post(
                "/v1/responses",
                json={"model": "echo", "input": f"turn {i}", "stream": i % 2 == 0},
                headers={"authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200
        # while the server runs (it holds the data directory), `respgate usage` still reads
        live = subprocess.run(
            [sys.executable, "-m", "respgate", "usage", "--config", str(config)],
            env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert live.returncode == 0, live.stderr
        assert live.stdout.splitlines()[0].split()[:3] == ["tenant", "model", "requests"]
    assert main(["usage", "--config", str(config), "--json", "--tenant", "team-a"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["usage"]
    assert row["tenant"] == "team-a" and row["model"] == "echo" and row["requests"] == 5
    assert row["cost"] == pytest.approx((row["input_tokens"] + 2 * row["output_tokens"]) / 1e6)
    assert main(["usage", "--config", str(config), "--since", "1h"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:3] == ["team-a", "echo", "5"] and table[-1].startswith("total")
    assert main(["usage", "--config", str(config), "--since", "2999-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["usage"] == []
    assert main(["usage", "--config", str(config), "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err


async def test_shutdown_waits_for_the_usage_still_being_written(tmp_path: Path) -> None:
    from respgate.protocol.request import parse_create_request
    from respgate.server.transport import fold

    store = await open_store(tmp_path / "data")
    write = store.record_usage

    async def slow_write(records: Any) -> None:
        await asyncio.sleep(0.3)  # a busy database
        await write(records)

    store.record_usage = slow_write  # type: ignore[method-assign]
    engine = Engine(ProviderRegistry(), store=lambda: asyncio.sleep(0, store))
    await engine.start()
    for i in range(3):
        run = await engine.create(
            parse_create_request(json.dumps({"model": "echo", "input": f"t{i}"}).encode())
        )
        await fold(run)
    await asyncio.wait_for(engine.shutdown(grace=1), 20)  # closes the store it opened
    (row,) = await read_usage(tmp_path / "data")
    assert row.requests == 3
