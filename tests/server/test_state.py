"""Stored state over HTTP: auth, tenant isolation, store:false, chains, item_reference,
background mode with replay and cancel (in process, SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.server.app import create_app
from respgate.store.keys import ApiKeys
from respgate.store.sqlite import SqliteStore
from tests.support.oracle import assert_valid_stream, parse_sse

KEY_A = "sk-tenant-a-" + "a" * 32
KEY_B = "sk-tenant-b-" + "b" * 32
SLOW = {"echo_scenario": "long", "echo_tokens": "400", "echo_delay_ms": "10"}


@pytest.fixture
async def state_engine(tmp_path: Any) -> AsyncIterator[Engine]:
    store = await SqliteStore.open(tmp_path / "data", poll_interval=0.05)
    engine = Engine(ProviderRegistry(), store)
    yield engine
    await engine.shutdown(grace=0)
    await store.close()


def client_for(engine: Engine, key: str | None) -> httpx.AsyncClient:
    app = create_app(
        engine,
        keys=ApiKeys.from_config(
            [KeyConfig(tenant="a", key=KEY_A), KeyConfig(tenant="b", key=KEY_B)]
        ),
    )
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://respgate.test", headers=headers
    )


@pytest.fixture
async def a(state_engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(state_engine, KEY_A) as c:
        yield c


@pytest.fixture
async def b(state_engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(state_engine, KEY_B) as c:
        yield c


async def create(c: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await c.post("/v1/responses", json={"model": "echo", "input": "hello", **body})
    assert r.status_code == 200, r.text
    return r.json()


def endpoints(response_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/responses/{response_id}", None),
        ("GET", f"/v1/responses/{response_id}?stream=true", None),
        ("DELETE", f"/v1/responses/{response_id}", None),
        ("GET", f"/v1/responses/{response_id}/input_items", None),
        ("POST", f"/v1/responses/{response_id}/cancel", None),
        (
            "POST",
            "/v1/responses",
            {"model": "echo", "input": "again", "previous_response_id": response_id},
        ),
    ]


@pytest.mark.parametrize("key", [None, "sk-wrong-" + "x" * 30])
async def test_without_a_valid_key_every_endpoint_is_401(
    state_engine: Engine, key: str | None
) -> None:
    async with client_for(state_engine, key) as c:
        for method, path, body in [*endpoints("resp_x"), ("GET", "/v1/models", None)]:
            r = await c.request(method, path, json=body)
            assert r.status_code == 401, (method, path)
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.json()["error"]["code"] == "invalid_api_key"


async def test_another_tenant_sees_exactly_what_a_missing_id_looks_like(
    a: httpx.AsyncClient, b: httpx.AsyncClient
) -> None:
    mine = await create(a, background=True)
    missing = "resp_" + "0" * 32
    for (method, path, body), (_, missing_path, missing_body) in zip(
        endpoints(mine["id"]), endpoints(missing), strict=True
    ):
        theirs = await b.request(method, path, json=body)
        never = await b.request(method, missing_path, json=missing_body)
        assert theirs.status_code == never.status_code == 404, (method, path)
        assert theirs.json() == {
            "error": {
                **never.json()["error"],
                "message": never.json()["error"]["message"].replace(missing, mine["id"]),
            }
        }
    assert (await a.get(f"/v1/responses/{mine['id']}")).status_code == 200


async def test_previous_response_not_found_names_the_parameter(a: httpx.AsyncClient) -> None:
    r = await a.post(
        "/v1/responses", json={"model": "echo", "input": "x", "previous_response_id": "resp_nope"}
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "previous_response_not_found"
    assert r.json()["error"]["param"] == "previous_response_id"


async def test_store_false_persists_nothing(a: httpx.AsyncClient) -> None:
    response = await create(a, store=False)
    assert (await a.get(f"/v1/responses/{response['id']}")).status_code == 404
    r = await a.post(
        "/v1/responses",
        json={"model": "echo", "input": "x", "previous_response_id": response["id"]},
    )
    assert r.status_code == 404


async def test_an_immediate_follow_up_continues_the_chain_without_old_instructions(
    a: httpx.AsyncClient,
) -> None:
    first = await create(a, input="one", instructions="Be brief.")
    second = await create(a, input="two", previous_response_id=first["id"])
    assert second["previous_response_id"] == first["id"]
    assert second["instructions"] is None
    stored = (await a.get(f"/v1/responses/{second['id']}")).json()
    assert stored == second
    items = (await a.get(f"/v1/responses/{second['id']}/input_items")).json()
    assert [i["content"] for i in items["data"]] == [[{"type": "input_text", "text": "two"}]]


async def test_item_reference_is_resolved_and_stored_resolved(a: httpx.AsyncClient) -> None:
    first = await create(a, input="remember me")
    output_id = first["output"][0]["id"]
    second = await create(
        a, input=[{"type": "item_reference", "id": output_id}, {"role": "user", "content": "and?"}]
    )
    url = f"/v1/responses/{second['id']}/input_items"
    params = {"order": "asc", "include[]": "message.output_text.logprobs"}
    items = (await a.get(url, params=params)).json()["data"]
    assert items[0] == first["output"][0]
    r = await a.post(
        "/v1/responses",
        json={"model": "echo", "input": [{"type": "item_reference", "id": "msg_unknown"}]},
    )
    assert r.status_code == 404 and r.json()["error"]["param"] == "input[0].id"


async def test_delete_then_everything_is_404(a: httpx.AsyncClient) -> None:
    response = await create(a)
    r = await a.delete(f"/v1/responses/{response['id']}")
    assert r.json() == {"id": response["id"], "object": "response.deleted", "deleted": True}
    assert (await a.get(f"/v1/responses/{response['id']}")).status_code == 404
    assert (await a.delete(f"/v1/responses/{response['id']}")).status_code == 404


async def test_input_items_query_parameters_are_validated(a: httpx.AsyncClient) -> None:
    response = await create(a)
    for params, param in (
        ({"limit": "x"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"order": "sideways"}, "order"),
    ):
        r = await a.get(f"/v1/responses/{response['id']}/input_items", params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == param


async def wait_status(c: httpx.AsyncClient, response_id: str, status: str) -> dict[str, Any]:
    for _ in range(500):
        response = (await c.get(f"/v1/responses/{response_id}")).json()
        if response["status"] == status:
            return response
        await asyncio.sleep(0.01)
    raise AssertionError(f"{response_id} never became {status}: {response['status']}")


async def test_background_returns_queued_then_replays_from_any_point(a: httpx.AsyncClient) -> None:
    queued = await create(a, background=True, input="in the background")
    assert queued["status"] == "queued" and queued["background"] is True
    done = await wait_status(a, queued["id"], "completed")
    assert done["output"][0]["content"][0]["text"] == "Echo: in the background"
    events = parse_sse(
        (await a.get(f"/v1/responses/{queued['id']}", params={"stream": "true"})).content
    )
    assert_valid_stream(events)
    assert [e["type"] for e in events[:2]] == ["response.created", "response.queued"]
    assert events[-2]["type"] == "response.completed"
    tail = parse_sse(
        (
            await a.get(
                f"/v1/responses/{queued['id']}", params={"stream": "true", "starting_after": "3"}
            )
        ).content
    )
    assert tail == events[4:]


async def test_background_stream_true_streams_live_from_the_log(a: httpx.AsyncClient) -> None:
    r = await a.post(
        "/v1/responses", json={"model": "echo", "input": "live", "background": True, "stream": True}
    )
    events = parse_sse(r.content)
    assert_valid_stream(events)
    assert events[-2]["response"]["output"][0]["content"][0]["text"] == "Echo: live"


async def test_cancel_ends_a_background_response_and_its_followers(
    a: httpx.AsyncClient, state_engine: Engine
) -> None:
    queued = await create(a, background=True, metadata=SLOW)
    await wait_status(a, queued["id"], "in_progress")
    follower = asyncio.create_task(
        a.get(f"/v1/responses/{queued['id']}", params={"stream": "true"})
    )
    await asyncio.sleep(0.05)
    r = await a.post(f"/v1/responses/{queued['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    events = parse_sse((await asyncio.wait_for(follower, 10)).content)
    assert events[-1] == "[DONE]"
    assert events[-2]["type"] == "response.failed"
    assert events[-2]["response"]["status"] == "cancelled"
    for _ in range(500):
        if queued["id"] not in state_engine.background:
            break
        await asyncio.sleep(0.01)
    assert queued["id"] not in state_engine.background  # generation stopped
    assert (await a.get(f"/v1/responses/{queued['id']}")).json()["status"] == "cancelled"
    assert (await a.post(f"/v1/responses/{queued['id']}/cancel")).json()["status"] == "cancelled"


async def test_cancel_and_replay_refuse_foreground_responses(a: httpx.AsyncClient) -> None:
    response = await create(a)
    assert (await a.post(f"/v1/responses/{response['id']}/cancel")).status_code == 400
    r = await a.get(f"/v1/responses/{response['id']}", params={"stream": "true"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"


async def test_continuing_a_response_still_in_progress_is_refused(a: httpx.AsyncClient) -> None:
    queued = await create(a, background=True, metadata=SLOW)
    await wait_status(a, queued["id"], "in_progress")
    r = await a.post(
        "/v1/responses",
        json={"model": "echo", "input": "next", "previous_response_id": queued["id"]},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (
        "previous_response_in_progress",
        "previous_response_id",
    )
    await a.post(f"/v1/responses/{queued['id']}/cancel")


async def test_a_chain_missing_a_link_is_not_found_and_a_running_one_still_in_progress(
    a: httpx.AsyncClient,
) -> None:
    first = await create(a)
    second = await create(a, previous_response_id=first["id"])
    running = await create(a, background=True, metadata=SLOW, previous_response_id=second["id"])
    await wait_status(a, running["id"], "in_progress")
    assert (await a.delete(f"/v1/responses/{first['id']}")).status_code == 200
    for previous, status, code in (
        (second["id"], 404, "previous_response_not_found"),
        (running["id"], 400, "previous_response_in_progress"),  # said first, as before the cut
    ):
        r = await a.post(
            "/v1/responses",
            json={"model": "echo", "input": "next", "previous_response_id": previous},
        )
        assert r.status_code == status
        error = r.json()["error"]
        assert (error["code"], error["param"]) == (code, "previous_response_id")
    await a.post(f"/v1/responses/{running['id']}/cancel")
