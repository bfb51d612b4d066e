"""Faults before and after the first byte, retries, fallbacks and status mapping,
all over real HTTP against the fake upstream."""

from __future__ import annotations

import asyncio
import socket

import pytest

from respgate.config import Target
from respgate.protocol.errors import ApiError
from respgate.protocol.signals import Failure, TextDelta

from .fake_upstream import FakeUpstream, Reply, fixture
from .support import SECRET, call_of, drive, provider, request, router_for

TEXT = fixture("chat_completions", "text")


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def open_error(router, model: str = "m") -> ApiError:
    try:
        with pytest.raises(ApiError) as info:
            await router.open(model, call_of(request()))
    finally:
        await router.aclose()
    return info.value


async def upstream_left(up: FakeUpstream, seconds: float = 10) -> None:
    """Wait, at most `seconds`, until the fake upstream sees the client leave."""
    try:
        async with asyncio.timeout(seconds):
            await up.disconnected.wait()
    except TimeoutError:
        pytest.fail(f"the upstream request was not cancelled within {seconds} s")


# ------------------------------------------------------------ after the first byte


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(TEXT, drop_after=len(TEXT) // 2), "upstream_disconnected"),
        (Reply(TEXT, stall_after=len(TEXT) // 2), "upstream_timeout"),
    ],
    ids=["drop", "idle"],
)
async def test_mid_stream_fault_is_a_failure_after_the_text_so_far(reply: Reply, code: str) -> None:
    async with FakeUpstream(reply) as up:
        router = router_for("chat_completions", up.url, read_timeout=0.2)
        try:
            out = await drive(await router.open("m", call_of(request())))
        finally:
            await router.aclose()
    assert out.response["status"] == "failed"
    assert [e["code"] for e in out.events if isinstance(e, dict) and e["type"] == "error"] == [code]
    assert out.text == "Hel"  # what arrived before the fault, not repeated
    assert len(up.requests) == 1  # never retried once streaming


async def test_closing_the_signal_stream_cancels_the_upstream_request() -> None:
    async with FakeUpstream(Reply(TEXT, stall_after=len(TEXT) // 2)) as up:
        router = router_for("chat_completions", up.url)
        try:
            stream = await router.open("m", call_of(request()))
            assert await asyncio.wait_for(anext(stream), 10) == TextDelta("Hel")
            await stream.aclose()
            await upstream_left(up)
        finally:
            await router.aclose()


async def test_closing_before_reading_still_cancels_the_upstream_request() -> None:
    async with FakeUpstream(Reply(TEXT, stall_after=10)) as up:
        router = router_for("chat_completions", up.url)
        try:
            stream = await router.open("m", call_of(request()))
            await stream.aclose()
            await upstream_left(up)
        finally:
            await router.aclose()


async def test_a_finished_stream_gives_its_connection_back_to_the_pool() -> None:
    async with FakeUpstream(Reply(TEXT)) as up:
        router = router_for("chat_completions", up.url)
        try:
            for _ in range(3):
                out = await drive(await router.open("m", call_of(request())))
                assert out.text == "Hello!"
        finally:
            await router.aclose()
    assert len(up.requests) == 3
    assert up.connections == 1


# ------------------------------------------------------------ before the first byte


async def test_5xx_is_retried_then_succeeds() -> None:
    async with FakeUpstream(Reply.error(503, "busy"), Reply.error(500, "oops"), Reply(TEXT)) as up:
        router = router_for("chat_completions", up.url, max_retries=2)
        try:
            out = await drive(await router.open("m", call_of(request())))
        finally:
            await router.aclose()
    assert out.text == "Hello!"
    assert len(up.requests) == 3
    assert len(router.slept) == 2


async def test_429_honours_retry_after() -> None:
    async with FakeUpstream(
        Reply.error(429, "slow down", **{"retry-after": "3"}), Reply(TEXT)
    ) as up:
        router = router_for("chat_completions", up.url, max_retries=1)
        try:
            out = await drive(await router.open("m", call_of(request())))
        finally:
            await router.aclose()
    assert out.text == "Hello!"
    assert router.slept and router.slept[0] >= 3


async def test_429_with_a_long_retry_after_stays_429_with_the_header() -> None:
    async with FakeUpstream(Reply.error(429, "slow down", **{"retry-after": "120"})) as up:
        err = await open_error(router_for("chat_completions", up.url, max_retries=3))
    assert (err.status, err.code, err.headers) == (
        429,
        "rate_limit_exceeded",
        {"retry-after": "120"},
    )
    assert len(up.requests) == 1  # a wait beyond the cap is not worth retrying


async def test_fallbacks_are_tried_in_order_after_retries() -> None:
    async with (
        FakeUpstream(Reply.error(500, "down")) as bad,
        FakeUpstream(Reply.error(401, "nope")) as worse,
        FakeUpstream(Reply(fixture("anthropic", "text"))) as good,
    ):
        router = router_for(
            "chat_completions",
            bad.url,
            max_retries=1,
            fallbacks=(Target("b"), Target("c", "claude-x")),
            extra=(
                provider("b", "chat_completions", worse.url, max_retries=1),
                provider("c", "anthropic", good.url),
            ),
        )
        try:
            out = await drive(await router.open("m", call_of(request())))
        finally:
            await router.aclose()
    assert out.text == "Hello!"
    assert [len(bad.requests), len(worse.requests), len(good.requests)] == [
        2,
        1,
        1,
    ]  # 401 is not retried
    assert [r.body["model"] for r in (bad.requests[0], worse.requests[0], good.requests[0])] == [
        "upstream-m",
        "m",
        "claude-x",
    ]


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (Reply.error(401, f"Incorrect API key provided: {SECRET}"), 502, "upstream_auth_error"),
        (Reply.error(403, f"key {SECRET} forbidden"), 502, "upstream_auth_error"),
        (Reply.error(404, "The model `upstream-m` does not exist"), 404, "model_not_found"),
        (Reply.error(400, f"bad request for {SECRET}"), 400, "upstream_bad_request"),
        (Reply.error(502, "gateway"), 502, "upstream_error"),
    ],
    ids=["401", "403", "404", "400", "502"],
)
async def test_upstream_status_mapping_never_echoes_the_key(
    reply: Reply, status: int, code: str
) -> None:
    async with FakeUpstream(reply) as up:
        err = await open_error(router_for("chat_completions", up.url))
    assert (err.status, err.code) == (status, code)
    assert SECRET not in err.message
    if status == 502 and code == "upstream_auth_error":
        assert "credentials for provider up" in err.message
    assert up.requests[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_connect_error_is_retried_then_502() -> None:
    router = router_for("chat_completions", closed_port_url(), max_retries=2)
    err = await open_error(router)
    assert (err.status, err.code) == (502, "upstream_connect_error")
    assert len(router.slept) == 2


async def test_unrouted_model_is_404_model_not_found() -> None:
    err = await open_error(router_for("chat_completions", closed_port_url()), "nope")
    assert (err.status, err.code) == (404, "model_not_found")


def test_resolve_exact_before_glob_and_models_lists_exact_names() -> None:
    from respgate.config import Config, RouteConfig
    from respgate.providers.router import Router

    p = provider("p", "chat_completions", "http://127.0.0.1:1/v1")
    q = provider("q", "anthropic", "http://127.0.0.1:1/v1")
    router = Router(
        Config(
            {"p": p, "q": q},
            [RouteConfig("claude-*", "q"), RouteConfig("claude-x", "p", "local-x")],
        )
    )
    exact = router.resolve("claude-x")
    assert exact is not None and [(t.provider, t.upstream_model) for t in exact.targets] == [
        ("p", "local-x")
    ]
    glob = router.resolve("claude-sonnet-9")
    assert glob is not None and [(t.provider, t.upstream_model) for t in glob.targets] == [
        ("q", "claude-sonnet-9")
    ]
    assert router.resolve("gpt-4") is None
    assert router.models() == ["claude-x"]


async def test_in_band_failure_signal_ends_the_stream() -> None:
    async with FakeUpstream(Reply(fixture("chat_completions", "inband_error"))) as up:
        router = router_for("chat_completions", up.url)
        try:
            stream = await router.open("m", call_of(request()))
            signals = [s async for s in stream]
        finally:
            await router.aclose()
    assert isinstance(signals[-1], Failure)
    assert "CUDA out of memory" in signals[-1].message
