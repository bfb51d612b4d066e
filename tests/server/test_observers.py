"""The run lifecycle as observers see it (respgate/observe.py), through a real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from respgate.engine import Engine
from respgate.observe import Observer, RunInfo
from respgate.protocol.errors import ApiError
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import router_for


class Recorder(Observer):
    def __init__(self) -> None:
        self.steps: list[tuple[str, RunInfo]] = []
        self.errors: list[ApiError] = []

    def accepted(self, run: RunInfo) -> None:
        self.steps.append(("accepted", run))

    def rejected(self, run: RunInfo, error: ApiError) -> None:
        self.steps.append(("rejected", run))
        self.errors.append(error)

    def upstream_opened(self, run: RunInfo) -> None:
        self.steps.append(("upstream_opened", run))

    def upstream_first_byte(self, run: RunInfo) -> None:
        self.steps.append(("upstream_first_byte", run))

    def client_first_byte(self, run: RunInfo) -> None:
        self.steps.append(("client_first_byte", run))

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        self.steps.append(("finished", run))

    def names(self) -> list[str]:
        return [name for name, _ in self.steps]


class Broken(Observer):
    def accepted(self, run: RunInfo) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


async def post(engine: Engine, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.post("/v1/responses", json=body, headers={"x-request-id": "req-1"})


@pytest.mark.parametrize("stream", [True, False])
async def test_echo_run_steps_in_order(recorder: Recorder, stream: bool) -> None:
    engine = Engine(ProviderRegistry(), observers=[Broken(), recorder])
    r = await post(engine, {"model": "echo", "input": "hi there", "stream": stream})
    assert r.status_code == 200
    names = recorder.names()
    # the transport's first write may come before or after the run's end (echo is fast)
    assert sorted(names) == sorted(
        ["accepted", "upstream_opened", "upstream_first_byte", "client_first_byte", "finished"]
    )
    assert names.index("accepted") < names.index("upstream_opened")
    assert names.index("upstream_opened") < names.index("upstream_first_byte")
    assert names.index("upstream_first_byte") < names.index("finished")
    info = recorder.steps[-1][1]
    assert info.provider == "builtin" and info.upstream_model == "echo"
    assert info.transport == ("sse" if stream else "json")
    assert info.status == "completed" and info.error_code is None
    assert info.usage is not None and info.usage["output_tokens"] == 3
    assert info.response_id is not None and info.response_id.startswith("resp_")
    assert info.finished_at is not None and info.upstream_first_byte_at is not None
    assert info.accepted_at <= info.upstream_first_byte_at <= info.finished_at


async def test_failed_run_reports_its_error_code(recorder: Recorder) -> None:
    engine = Engine(ProviderRegistry(), observers=[recorder])
    body = {"model": "echo", "input": "a b c d", "stream": True}
    await post(engine, {**body, "metadata": {"echo_scenario": "fail"}})
    info = recorder.steps[-1][1]
    assert "finished" in recorder.names()
    assert info.status == "failed" and info.error_code is not None


async def test_unknown_model_is_rejected_before_opening(recorder: Recorder) -> None:
    engine = Engine(ProviderRegistry(), observers=[recorder])
    r = await post(engine, {"model": "nope", "input": "hi"})
    assert r.status_code == 404
    assert recorder.names() == ["accepted", "rejected"]
    assert recorder.steps[-1][1].error_code == "model_not_found"


async def test_retries_and_fallbacks_are_recorded(recorder: Recorder) -> None:
    replies = [Reply.error(503, "busy"), Reply(fixture("chat_completions", "text"))]
    async with FakeUpstream(*replies) as upstream:
        engine = Engine(ProviderRegistry(router_for("chat_completions", upstream.url, max_retries=1)),
                        observers=[recorder])  # fmt: skip
        try:
            r = await post(engine, {"model": "m", "input": "hi", "stream": True})
        finally:
            await engine.registry.aclose()
    assert r.status_code == 200
    info = recorder.steps[-1][1]
    assert [a.error is not None for a in info.attempts] == [True, False]
    assert info.retries == 1 and info.fallbacks == 0
    assert info.status == "completed"
