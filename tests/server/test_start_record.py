"""A stored stream's in_progress record (`engine.StartRecord`): on record while the
response waits on its upstream, and not written at all for a response whose upstream
reads were all in hand when its first token went out (its final save stores it once).
Real HTTP to the server and to a fake upstream, a SQLite store; saves counted by
`/metrics`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from respgate.providers.registry import ProviderRegistry
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for
from tests.server.test_metrics import KEYS, TEAM, moved, scrape, scrape_until, with_metrics
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse

TEXT = fixture("chat_completions", "text")  # "Hel", "lo!", finish, usage, [DONE]
BODY = {"model": "m", "input": "hi", "stream": True}
SAVES = "respgate_store_operation_seconds_count"


async def status_of(c: httpx.AsyncClient, response_id: str) -> str:
    r = await c.get(f"/v1/responses/{response_id}")
    return r.json()["status"] if r.status_code == 200 else str(r.status_code)


async def test_a_stream_waiting_on_its_upstream_is_on_record_as_in_progress(
    tmp_path: Path,
) -> None:
    after_hel = TEXT.index(b"data: ", TEXT.index(b'"Hel"'))
    async with FakeUpstream(Reply(TEXT, pause_after=after_hel, pause=2.0)) as up:
        engine, metrics = with_metrics(ProviderRegistry(router_for("chat_completions", up.url)),
                                       tmp_path)  # fmt: skip
        with LiveServer(engine, keys=KEYS, metrics=metrics) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=TEAM) as c:
                before = await scrape(c)
                async with c.stream("POST", "/v1/responses", json=BODY) as r:
                    lines = r.aiter_lines()
                    async for line in lines:  # up to the first token
                        if line.startswith("data: ") and '"response.created"' in line:
                            response_id = orjson.loads(line[6:])["response"]["id"]
                        if '"response.output_text.delta"' in line:
                            break
                    # the upstream pauses here for two seconds: the record is written meanwhile
                    deadline = time.monotonic() + 1.5
                    while (status := await status_of(c, response_id)) != "in_progress":
                        assert time.monotonic() < deadline, status
                    rest = [line async for line in lines]
                assert "data: [DONE]" in rest
                assert await status_of(c, response_id) == "completed"
                after = await scrape_until(
                    c, lambda s: moved(before, s, SAVES, operation="save") >= 2
                )
    assert moved(before, after, SAVES, operation="save") == 2  # the record, then the final save


async def test_a_stream_whole_in_hand_at_its_first_token_is_saved_once(tmp_path: Path) -> None:
    async with FakeUpstream(Reply(TEXT, one_write=True)) as up:  # in hand with the headers
        engine, metrics = with_metrics(ProviderRegistry(router_for("chat_completions", up.url)),
                                       tmp_path)  # fmt: skip
        with LiveServer(engine, keys=KEYS, metrics=metrics) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=TEAM) as c:
                before = await scrape(c)
                r = await c.post("/v1/responses", json=BODY)
                events = parse_sse(r.content)
                assert_valid_stream(events)
                response_id = events[0]["response"]["id"]
                assert await status_of(c, response_id) == "completed"
                after = await scrape(c)
    assert moved(before, after, SAVES, operation="save") == 1  # the final save alone
