"""`POST /v1/responses` takes a direct way past Starlette's router (server/direct.py):
what every other request gets must still hold for it: the request id, the error shape,
an unexpected error's 500, CORS when configured, and the other routes as before."""

from __future__ import annotations

import httpx
import pytest

from respgate.engine import Engine
from respgate.server.app import create_app

ORIGIN = "http://app.example"


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )


async def test_a_stream_carries_the_callers_request_id_once(engine: Engine) -> None:
    body = {"model": "echo", "input": "a b", "stream": True}
    async with client_of(create_app(engine)) as c:
        r = await c.post("/v1/responses", json=body, headers={"x-request-id": "req-42"})
    assert r.status_code == 200
    assert r.headers.get_list("x-request-id") == ["req-42"]
    assert r.content.endswith(b"data: [DONE]\n\n")


async def test_a_bad_request_is_the_usual_error_with_a_request_id(engine: Engine) -> None:
    async with client_of(create_app(engine)) as c:
        r = await c.post("/v1/responses", json={"model": "echo", "input": "x", "temperature": 9})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "temperature"
    assert len(r.headers.get_list("x-request-id")) == 1


async def test_an_unexpected_error_is_a_500_with_the_request_id(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "create", broken)
    async with client_of(create_app(engine)) as c:
        r = await c.post("/v1/responses", json={"model": "echo", "input": "x"})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "server_error"
    assert len(r.headers.get_list("x-request-id")) == 1


@pytest.mark.parametrize("origins", [None, [ORIGIN]])
async def test_cors_headers_follow_the_configuration(engine: Engine, origins) -> None:
    async with client_of(create_app(engine, cors_origins=origins)) as c:
        r = await c.post(
            "/v1/responses", json={"model": "echo", "input": "x"}, headers={"origin": ORIGIN}
        )
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == (ORIGIN if origins else None)


async def test_other_methods_and_paths_still_take_the_router(engine: Engine) -> None:
    async with client_of(create_app(engine)) as c:
        wrong_method = await c.put("/v1/responses")  # GET lists
        below = await c.post("/v1/responses/compact", content=b"{}")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert below.status_code in (400, 415)
    assert below.json()["error"]["type"] == "invalid_request_error"
