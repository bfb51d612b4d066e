"""GET /metrics over real HTTP: the exact series move after echo streams and after
failing upstreams (fake upstream on real sockets), admin-only with keys, 404 when off."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from respgate.config import Config, KeyConfig, ProviderConfig, RouteConfig, Target
from respgate.engine import Engine
from respgate.logs import ResponseLog
from respgate.metrics import Metrics
from respgate.providers.registry import ProviderRegistry
from respgate.providers.router import Router
from respgate.store import open_store
from respgate.store.keys import ApiKeys
from respgate.usage import Price, Prices
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.support.live import LiveServer, free_port
from tests.support.oracle import parse_sse

TEAM_KEY = "sk-team-a-0123456789abcdef"
ADMIN_KEY = "sk-admin-0123456789abcdef"
KEYS = ApiKeys.from_config(
    [KeyConfig(tenant="team-a", key=TEAM_KEY), KeyConfig(tenant="ops", key=ADMIN_KEY, admin=True)]
)
TEAM = {"authorization": f"Bearer {TEAM_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(c: httpx.AsyncClient) -> Samples:
    r = await c.get("/metrics", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


async def scrape_until(
    c: httpx.AsyncClient, ready: Callable[[Samples], bool], timeout: float = 10
) -> Samples:
    """Scrape until `ready` (a request is counted once its response has been sent)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(c)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.02)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def with_metrics(
    registry: ProviderRegistry, store_dir: Path | None = None
) -> tuple[Engine, Metrics]:
    metrics = Metrics(registry.route_name)
    opener = None
    if store_dir is not None:

        async def opener() -> Any:
            return metrics.timed_store(await open_store(store_dir))

    return Engine(registry, opener, observers=[metrics]), metrics


async def test_echo_streams_move_the_series(tmp_path: Path) -> None:
    engine, metrics = with_metrics(ProviderRegistry(), tmp_path)
    with LiveServer(engine, keys=KEYS, metrics=metrics) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=TEAM) as c:
            before = await scrape(c)
            usages = []  # (input, output) tokens of each response, as the client saw them
            for _ in range(3):
                r = await c.post("/v1/responses", json={"model": "echo", "input": "one two three",
                                                        "stream": True})  # fmt: skip
                final_event = parse_sse(r.content)[-2]
                assert isinstance(final_event, dict)
                assert final_event["type"] == "response.completed"
                usage = final_event["response"]["usage"]
                usages.append((usage["input_tokens"], usage["output_tokens"]))
            async with openai.AsyncOpenAI(api_key=TEAM_KEY, base_url=f"{server.url}/v1") as sdk:
                final = await sdk.responses.create(model="echo", input="four five")
            assert final.status == "completed" and final.usage is not None
            usages.append((final.usage.input_tokens, final.usage.output_tokens))
            r = await c.post("/v1/responses", json={"model": "no-such-model", "input": "x"})
            assert r.status_code == 404
            r = await c.post("/v1/responses", content=b"{not json")
            assert r.status_code == 400
            r = await c.post("/v1/responses", json={"model": "echo", "input": "x"})
            assert r.status_code == 200
            usages.append((r.json()["usage"]["input_tokens"], r.json()["usage"]["output_tokens"]))
            r = await c.post("/v1/responses", json={"model": "echo"}, headers={"authorization": ""})
            assert r.status_code == 401
            for method in ("PROPFIND", "PURGE"):  # label values stay bounded
                r = await c.request(method, "/v1/responses/resp_x")
                assert r.status_code == 405
            r = await c.get("/v1/responses/resp_unknown")
            assert r.status_code == 404
            endpoint = "/v1/responses"
            after = await scrape_until(c, lambda s: value(
                s, "respgate_requests_total", endpoint=endpoint, method="POST", model="",
                status="401") >= 1)  # fmt: skip
    post = {"endpoint": endpoint, "method": "POST"}
    assert moved(before, after, "respgate_requests_total", **post, model="echo", status="200") == 5
    assert moved(before, after, "respgate_requests_total", **post, model="other", status="404") == 1
    assert moved(before, after, "respgate_requests_total", **post, model="", status="400") == 1
    assert moved(before, after, "respgate_requests_total", **post, model="", status="401") == 1
    by_id = {"endpoint": "/v1/responses/{response_id}", "model": ""}
    assert moved(before, after, "respgate_requests_total", **by_id, method="other",
                 status="405") == 2  # fmt: skip
    assert moved(before, after, "respgate_requests_total", **by_id, method="GET",
                 status="404") == 1  # fmt: skip
    echo = {"model": "echo"}
    assert moved(before, after, "respgate_responses_total", **echo, transport="sse",
                 status="completed") == 3  # fmt: skip
    assert moved(before, after, "respgate_responses_total", **echo, transport="json",
                 status="completed") == 2  # fmt: skip
    assert moved(before, after, "respgate_responses_total", model="other", transport="json",
                 status="rejected") == 1  # fmt: skip
    assert moved(before, after, "respgate_time_to_first_byte_seconds_count", **echo) == 5
    assert moved(before, after, "respgate_response_duration_seconds_count", **echo) == 5
    assert moved(before, after, "respgate_gateway_latency_seconds_count", transport="sse") == 3
    assert value(after, "respgate_gateway_latency_seconds_count", transport="json") == 0
    tokens = {"model": "echo", "tenant": "team-a"}
    assert moved(before, after, "respgate_tokens_total", **tokens, kind="input") == sum(
        i for i, _ in usages
    )
    assert moved(before, after, "respgate_tokens_total", **tokens, kind="output") == sum(
        o for _, o in usages
    )
    assert value(after, "respgate_tokens_total", model="echo", tenant="ops", kind="input") == 0
    for transport in ("sse", "json", "websocket", "background"):
        assert value(after, "respgate_responses_in_flight", transport=transport) == 0
    # 5 stored responses, each saved once: echo ends before the first write, so no response
    # needed its in_progress record (engine.StartRecord) before the final save
    assert moved(before, after, "respgate_store_operation_seconds_count", operation="save") == 5
    assert value(after, "respgate_store_operation_seconds_count", operation="recover") == 1


def upstream_config(up: str, slow: str) -> Config:
    def provider(name: str, url: str, **opts: Any) -> ProviderConfig:
        return ProviderConfig(name, "chat_completions", url, **opts)

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    providers = {
        "up": provider("up", up, max_retries=1),
        "down": provider("down", dead, max_retries=0),
        "slow": provider("slow", slow, max_retries=0, read_timeout=0.3),
    }
    routes = [
        RouteConfig("m", "up", "upstream-m"),
        RouteConfig("dead", "down", "x", fallbacks=(Target("up", "upstream-m"),)),
        RouteConfig("slow", "slow", "s"),
        RouteConfig("g-*", "up"),
    ]
    return Config(providers, routes)


async def test_failing_upstreams_move_the_error_retry_and_fallback_series() -> None:
    text = fixture("chat_completions", "text")
    replies = [
        Reply.error(503, "busy"), Reply(text),  # 1: a retry, then completed
        Reply(text, drop_after=len(text) // 2),  # 2: dropped mid-stream
        Reply(text),  # 3: after the dead provider (fallback); 4: the glob route
    ]  # fmt: skip
    async with (
        FakeUpstream(*replies) as up,
        FakeUpstream(Reply(text, stall_after=len(text) // 2)) as slow,
    ):
        registry = ProviderRegistry(Router(upstream_config(up.url, slow.url)))
        engine, metrics = with_metrics(registry)
        with LiveServer(engine, keys=KEYS, metrics=metrics) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=TEAM) as c:
                before = await scrape(c)
                statuses = []
                for i, model in enumerate(["m", "m", "dead", "g-anything", "slow"]):
                    r = await c.post("/v1/responses", json={"model": model, "input": "hi",
                                     "stream": True}, headers={"x-request-id": f"req-{i}"})  # fmt: skip
                    assert r.headers["x-request-id"] == f"req-{i}"
                    statuses.append(b"response.completed" in r.content)
                assert statuses == [True, False, True, True, False]
                after = await scrape_until(c, lambda s: value(
                    s, "respgate_responses_total", model="slow", transport="sse",
                    status="failed") >= 1)  # fmt: skip
        # x-request-id reached the upstream, once per attempt
        assert [r.headers["x-request-id"] for r in up.requests] == [
            "req-0", "req-0", "req-1", "req-2", "req-3"]  # fmt: skip
        assert slow.requests[0].headers["x-request-id"] == "req-4"

    def errors(provider: str, kind: str) -> float:
        return moved(before, after, "respgate_upstream_errors_total", provider=provider, kind=kind)

    assert errors("up", "status") == 1
    assert errors("up", "mid_stream") == 1
    assert errors("down", "connect") == 1
    assert errors("slow", "timeout") == 1
    assert errors("up", "connect") == errors("up", "timeout") == 0
    assert moved(before, after, "respgate_upstream_retries_total", provider="up") == 1
    assert moved(before, after, "respgate_upstream_fallbacks_total", provider="up") == 1
    sse = {"transport": "sse"}
    assert (
        moved(before, after, "respgate_responses_total", model="m", **sse, status="completed") == 1
    )
    assert moved(before, after, "respgate_responses_total", model="m", **sse, status="failed") == 1
    assert moved(before, after, "respgate_responses_total", model="dead", **sse,
                 status="completed") == 1  # fmt: skip
    # a glob-routed name is labelled with its route, never with the name asked for
    assert moved(before, after, "respgate_responses_total", model="g-*", **sse,
                 status="completed") == 1  # fmt: skip
    assert not any("g-anything" in str(labels) for _, labels in after)
    usage = {"model": "m", "tenant": "team-a"}
    assert moved(before, after, "respgate_tokens_total", **usage, kind="input") > 0


async def test_in_flight_gauge_counts_an_open_stream() -> None:
    text = fixture("chat_completions", "text")
    async with FakeUpstream(Reply(text, stall_after=len(text) // 2)) as up:
        registry = ProviderRegistry(Router(upstream_config(up.url, up.url)))
        engine, metrics = with_metrics(registry)
        with LiveServer(engine, metrics=metrics) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                body = {"model": "m", "input": "hi", "stream": True}
                async with c.stream("POST", "/v1/responses", json=body) as r:
                    # the iterator is kept: a dropped one is finalized, and httpcore then
                    # closes the connection (a client disconnect, which ends the run)
                    chunks = r.aiter_bytes()
                    async for chunk in chunks:
                        if b"output_text.delta" in chunk:
                            break
                    during = parse((await c.get("/metrics")).text)
                after = await scrape_until(
                    c, lambda s: value(s, "respgate_responses_in_flight", transport="sse") == 0
                )
    assert value(during, "respgate_responses_in_flight", transport="sse") == 1
    assert value(after, "respgate_responses_in_flight", transport="sse") == 0
    assert value(after, "respgate_responses_total", model="m", transport="sse",
                 status="failed") == 1  # fmt: skip


async def test_metrics_need_an_admin_key_when_keys_are_configured() -> None:
    engine, metrics = with_metrics(ProviderRegistry())
    with LiveServer(engine, keys=KEYS, metrics=metrics) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
            missing = await c.get("/metrics")
            team = await c.get("/metrics", headers=TEAM)
            admin = await c.get("/metrics", headers=ADMIN)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert team.status_code == 403
    assert team.json()["error"] == {
        "message": "Reading metrics needs an admin key ([[keys]] admin = true).",
        "type": "permission_error",
        "param": None,
        "code": "admin_key_required",
    }
    assert admin.status_code == 200 and "respgate_requests_total" in admin.text
    samples = parse(admin.text)
    assert value(samples, "process_resident_memory_bytes") > 0
    for generation in "012":  # the garbage collector's work (docs/design.md, fourth pass)
        assert f'python_gc_collections_total{{generation="{generation}"}}' in admin.text


async def test_without_metrics_the_endpoint_is_a_404() -> None:
    with LiveServer(Engine(ProviderRegistry())) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
            r = await c.get("/metrics")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_websocket_turns_are_counted_logged_and_carry_the_request_id() -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.websocket.responses")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    registry = ProviderRegistry()
    metrics = Metrics(registry.route_name)
    engine = Engine(registry, observers=[metrics, ResponseLog(logger)])
    try:
        with LiveServer(engine, metrics=metrics) as server:
            headers = {"x-request-id": "ws-1"}
            async with connect(server.ws_url, additional_headers=headers) as ws:
                assert ws.response is not None
                assert ws.response.headers["x-request-id"] == "ws-1"
                await ws.send(orjson.dumps({"type": "response.create", "model": "echo",
                                            "input": "one two"}).decode())  # fmt: skip
                while orjson.loads(await ws.recv())["type"] != "response.completed":
                    pass
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as c:
                samples = await scrape_until(c, lambda s: value(
                    s, "respgate_responses_in_flight", transport="websocket") == 0)  # fmt: skip
    finally:
        logger.removeHandler(handler)
    assert value(samples, "respgate_responses_total", model="echo", transport="websocket",
                 status="completed") == 1  # fmt: skip
    assert value(samples, "respgate_gateway_latency_seconds_count", transport="websocket") == 1
    [record] = records
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["request_id"] == "ws-1" and fields["transport"] == "websocket"
    assert fields["status"] == "completed" and fields["ttft_ms"] is not None


async def test_cost_follows_the_price_table() -> None:
    metrics = Metrics(ProviderRegistry().route_name)
    prices = Prices({"echo": Price(input=3.0, cached_input=3.0, output=7.0)})
    engine = Engine(ProviderRegistry(), None, prices=prices, observers=[metrics])
    with LiveServer(engine, keys=KEYS, metrics=metrics) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=TEAM) as c:
            before = await scrape(c)
            r = await c.post("/v1/responses", json={"model": "echo", "input": "one two three"})
            usage = r.json()["usage"]
            after = await scrape_until(c, lambda s: value(
                s, "respgate_cost_usd_total", model="echo", tenant="team-a") > 0)  # fmt: skip
    expected = (usage["input_tokens"] * 3.0 + usage["output_tokens"] * 7.0) / 1e6
    got = moved(before, after, "respgate_cost_usd_total", model="echo", tenant="team-a")
    assert abs(got - expected) < 1e-12 and expected > 0
