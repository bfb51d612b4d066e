"""Real server processes: SIGKILL mid-generation and restart; two processes sharing PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.live import running
from tests.support.oracle import assert_valid_stream, parse_sse

SLOW = {"echo_scenario": "long", "echo_tokens": "2000", "echo_delay_ms": "10"}


def wait_status(c: httpx.Client, response_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        response = c.get(f"/v1/responses/{response_id}").json()
        if response["status"] in statuses:
            return response
        assert time.monotonic() < deadline, response["status"]
        time.sleep(0.02)


def test_sigkill_mid_generation_then_restart(tmp_path: Any) -> None:
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env) as first, first.client() as c:
        done = [
            c.post("/v1/responses", json={"model": "echo", "input": f"turn {i}"}).json()
            for i in range(3)
        ]
        bg = c.post(
            "/v1/responses",
            json={"model": "echo", "input": "x", "background": True, "metadata": SLOW},
        ).json()
        received = b""
        with (
            c.stream("GET", f"/v1/responses/{bg['id']}", params={"stream": "true"}) as r,
            pytest.raises(httpx.TransportError),  # the follower's server dies under it
        ):
            for chunk in r.iter_bytes():
                received += chunk
                if received.count(b"output_text.delta") >= 5:
                    first.kill()
        seen = [e for e in parse_sse(received) if isinstance(e, dict)]
    with running(env) as second, second.client() as c:
        for response in done:
            assert c.get(f"/v1/responses/{response['id']}").json() == response
        failed = c.get(f"/v1/responses/{bg['id']}").json()
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "server_error"
        last = seen[-1]["sequence_number"]
        resumed = parse_sse(
            c.get(
                f"/v1/responses/{bg['id']}", params={"stream": "true", "starting_after": str(last)}
            ).content
        )
        assert resumed[-1] == "[DONE]"
        assert resumed[-2]["type"] == "response.failed"
        assert resumed[0]["sequence_number"] == last + 1


def test_sigkill_mid_foreground_stream_leaves_a_failed_record(tmp_path: Any) -> None:
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    body = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}
    with running(env) as first, first.client() as c:
        received = b""
        with (
            c.stream("POST", "/v1/responses", json=body) as r,
            pytest.raises(httpx.TransportError),
        ):
            for chunk in r.iter_bytes():
                received += chunk
                if received.count(b"output_text.delta") >= 5:
                    first.kill()
        created = parse_sse(received.split(b"\n\n", 1)[0] + b"\n\n")[0]  # a frame may be cut
        response_id = created["response"]["id"]
    with running(env) as second, second.client() as c:
        record = c.get(f"/v1/responses/{response_id}").json()
        assert record["status"] == "failed"
        assert record["error"]["code"] == "server_error"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    url = os.environ.get("RESPGATE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("RESPGATE_TEST_DATABASE_URL is not set")
    schema = f"respgate_test_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}search_path={schema}"
    asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.mark.postgres
def test_two_processes_share_postgresql(pg_schema: str) -> None:
    env = {"RESPGATE_DATABASE_URL": pg_schema}
    with running(env) as one, running(env) as two, one.client() as c1, two.client() as c2:
        body = {
            "model": "echo",
            "input": "shared",
            "background": True,
            "metadata": {"echo_scenario": "long", "echo_tokens": "100", "echo_delay_ms": "5"},
        }
        bg = c1.post("/v1/responses", json=body).json()
        events = parse_sse(c2.get(f"/v1/responses/{bg['id']}", params={"stream": "true"}).content)
        assert events[-1] == "[DONE]"
        assert events[-2]["type"] == "response.completed"
        assert [e["sequence_number"] for e in events[:-1]] == list(range(len(events) - 1))
        assert c2.get(f"/v1/responses/{bg['id']}").json()["status"] == "completed"
        # the chain continues on the other process
        follow_up = c2.post(
            "/v1/responses",
            json={"model": "echo", "input": "next", "previous_response_id": bg["id"]},
        ).json()
        assert c1.get(f"/v1/responses/{follow_up['id']}").json()["status"] == "completed"
        # one process dies mid-generation: the other fails its response, followers end
        slow = c1.post("/v1/responses", json={**body, "metadata": SLOW}).json()
        wait_status(c2, slow["id"], "in_progress")
        one.kill()
        tail = parse_sse(c2.get(f"/v1/responses/{slow['id']}", params={"stream": "true"}).content)
        assert tail[-2]["type"] == "response.failed"
        assert c2.get(f"/v1/responses/{slow['id']}").json()["status"] == "failed"


PARTIAL = {"echo_scenario": "long", "echo_tokens": "400", "echo_delay_ms": "50"}


def start_and_kill(kill: Callable[[], object], c: httpx.Client, reader: httpx.Client) -> str:
    """A background response started through `c`, then `kill()` (the process that runs it:
    SIGKILL) once `reader` saw 5 deltas."""
    body = {"model": "echo", "input": "x", "background": True, "metadata": PARTIAL}
    bg = c.post("/v1/responses", json=body).json()
    received = b""
    with reader.stream("GET", f"/v1/responses/{bg['id']}", params={"stream": "true"}) as r:
        for chunk in r.iter_bytes():
            received += chunk
            if received.count(b"output_text.delta") >= 5:
                break
    kill()
    return bg["id"]


def assert_recovered_with_partial_output(c: httpx.Client, response_id: str) -> None:
    """The replayed stream ends as a live failure does, and GET keeps the partial text."""
    events = parse_sse(c.get(f"/v1/responses/{response_id}", params={"stream": "true"}).content)
    assert_valid_stream(events)  # the strict checker, the spec schemas, openai's types
    assert [e if isinstance(e, str) else e["type"] for e in events[-6:]] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "error",
        "response.failed",
        "[DONE]",
    ]
    deltas = [e for e in events[:-1] if e["type"] == "response.output_text.delta"]
    text = "".join(e["delta"] for e in deltas)
    assert text.startswith("token0 token1 ")  # what the reader saw before the kill
    failed = c.get(f"/v1/responses/{response_id}").json()
    assert failed == events[-2]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == text


def test_sigkill_then_restart_keeps_the_partial_output(tmp_path: Any) -> None:
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env) as first, first.client() as c:
        response_id = start_and_kill(first.kill, c, c)
    with running(env) as second, second.client() as c:
        assert_recovered_with_partial_output(c, response_id)


@pytest.mark.postgres
def test_replica_recovers_a_dead_owners_response_with_its_partial_output(
    pg_schema: str,
) -> None:
    env = {"RESPGATE_DATABASE_URL": pg_schema}
    with running(env) as one, running(env) as two, one.client() as c1, two.client() as c2:
        response_id = start_and_kill(one.kill, c1, c2)
        assert_recovered_with_partial_output(c2, response_id)  # noticed by the follower
