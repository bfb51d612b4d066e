"""Two `respgate serve` processes sharing one budget in the real Redis; Redis down."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.live import free_port, running

from .conftest import redis_url

pytestmark = pytest.mark.redis


@pytest.fixture
def key() -> Iterator[str]:
    """A fresh API key: its counters in Redis are this test's own (deleted after)."""
    value = f"sk-replicas-{secrets.token_hex(16)}"
    yield value
    import hashlib

    subject = hashlib.sha256(value.encode()).hexdigest()[:16]
    client = redis.Redis.from_url(redis_url())
    keys = list(client.scan_iter(match=f"respgate:limits:{{{subject}}}*"))
    if keys:
        client.delete(*keys)
    client.close()


def config(tmp_path: Path, limits: str) -> str:
    path = tmp_path / "respgate.toml"
    path.write_text(
        '[store]\nenabled = false\n\n[[keys]]\ntenant = "shared"\nkey_env = "REPLICA_KEY"\n\n'
        f"[limits]\n{limits}\n"
    )
    return str(path)


def post(server: object, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/responses",  # type: ignore[attr-defined]
        json={"model": "echo", "input": "hi", **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=20,
    )


def test_two_processes_share_one_request_budget(tmp_path: Path, key: str) -> None:
    path = config(tmp_path, f'requests_per_minute = 4\nredis_url = "{redis_url()}"')
    env = {"REPLICA_KEY": key}
    with running(env, "--config", path) as a, running(env, "--config", path) as b:
        remaining = []
        for server in (a, b, a, b):
            r = post(server, key)
            assert r.status_code == 200
            remaining.append(r.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["3", "2", "1", "0"]
        for server in (a, b):
            r = post(server, key)
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "requests_per_minute_exceeded"
            assert int(r.headers["retry-after"]) >= 1


def test_two_processes_share_the_stream_slots(tmp_path: Path, key: str) -> None:
    path = config(tmp_path, f'concurrent_streams = 1\nredis_url = "{redis_url()}"')
    env = {"REPLICA_KEY": key}
    slow = {"echo_scenario": "long", "echo_tokens": "2000", "echo_delay_ms": "20"}
    with running(env, "--config", path) as a, running(env, "--config", path) as b:
        with httpx.stream(
            "POST",
            f"{a.url}/v1/responses",
            json={"model": "echo", "input": "x", "stream": True, "metadata": slow},
            headers={"authorization": f"Bearer {key}"},
            timeout=20,
        ) as streamed:
            chunks = streamed.iter_bytes()  # (kept: a dropped iterator closes the stream)
            next(chunks)
            refused = post(b, key)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "concurrent_streams_exceeded"
        deadline = time.monotonic() + 10
        while post(b, key).status_code != 200:  # A saw the disconnect and gave it back
            assert time.monotonic() < deadline, "the slot was not released"
            time.sleep(0.05)


def test_unreachable_redis_fails_closed_with_a_503_or_open(tmp_path: Path, key: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {"REPLICA_KEY": key}
    closed = config(
        tmp_path, f'requests_per_minute = 1\nredis_url = "{dead}"\non_redis_error = "closed"'
    )
    with running(env, "--config", closed) as server:
        r = post(server, key)
        assert r.status_code == 503
        assert r.json()["error"] == {
            "message": r.json()["error"]["message"],
            "type": "server_error",
            "param": None,
            "code": "rate_limits_unavailable",
        }
        assert r.headers["retry-after"] == "1"
    (tmp_path / "open").mkdir()
    opened = config(tmp_path / "open", f'requests_per_minute = 1\nredis_url = "{dead}"')
    with running(env, "--config", opened) as server:
        for _ in range(3):  # unlimited while Redis is down
            r = post(server, key)
            assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
