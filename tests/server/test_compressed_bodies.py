"""Compressed request bodies against a real server (uvicorn on 127.0.0.1): `gzip`,
`deflate` and `zstd` (what Codex sends the ChatGPT backend) are read like plain bodies on
every JSON route; an unknown coding is a 415, a body that does not decode a 400, both
naming the header; and what a body decodes to is held to `max_body_bytes` (413), however
small it was on the wire."""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.support.live import LiveServer
from tests.support.oracle import assert_valid_stream, parse_sse

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

LIMIT = 64 * 1024
CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "zstd": lambda data: zstd.compress(data, 3),
}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with (
        LiveServer(Engine(ProviderRegistry()), max_body_bytes=LIMIT) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def post(http: httpx.Client, path: str, body: bytes, coding: str) -> httpx.Response:
    headers = {"content-type": "application/json", "content-encoding": coding}
    return http.post(path, content=body, headers=headers)


def error_of(r: httpx.Response) -> dict:
    assert r.headers["content-type"] == "application/json"
    return r.json()["error"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd", "GZIP"])
def test_a_compressed_body_streams_as_a_plain_one(http: httpx.Client, coding: str) -> None:
    body = orjson.dumps({"model": "echo", "input": "hello world", "stream": True})
    r = post(http, "/v1/responses", CODINGS[coding.lower()](body), coding)
    assert r.status_code == 200, r.text
    events = parse_sse(r.content)
    assert_valid_stream(events)
    assert events[-2]["response"]["output"][0]["content"][0]["text"] == "Echo: hello world"


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_every_json_route_reads_them(http: httpx.Client, coding: str) -> None:
    chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    r = post(http, "/v1/chat/completions", CODINGS[coding](orjson.dumps(chat)), coding)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Echo: hi"
    messages = {"model": "echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    r = post(http, "/v1/messages", CODINGS[coding](orjson.dumps(messages)), coding)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "Echo: hi"


def test_identity_is_the_body_as_it_is(http: httpx.Client) -> None:
    r = post(http, "/v1/responses", orjson.dumps({"model": "echo", "input": "x"}), "identity")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("coding", ["br", "gzip, zstd", "compress"])
def test_an_unknown_coding_is_a_415_naming_the_header(http: httpx.Client, coding: str) -> None:
    r = post(http, "/v1/responses", b"{}", coding)
    assert r.status_code == 415
    error = error_of(r)
    assert (error["code"], error["param"]) == ("unsupported_content_encoding", "content-encoding")
    assert "gzip, deflate, zstd" in error["message"]


BODY = orjson.dumps({"model": "echo", "input": "x"})


@pytest.mark.parametrize(
    ("coding", "data", "why"),
    [
        ("gzip", b"not gzip at all", "incorrect header check"),
        ("gzip", gzip.compress(BODY)[:-12], "ends early"),
        ("gzip", gzip.compress(BODY) + b"junk", "follows the end"),
        ("deflate", b"\x00\x01\x02", "incorrect header check"),
        ("zstd", b"not zstd", "unknown frame descriptor"),
        ("zstd", zstd.compress(BODY)[:-4], "ends early"),
    ],
)
def test_a_body_that_does_not_decode_is_a_400(
    http: httpx.Client, coding: str, data: bytes, why: str
) -> None:
    r = post(http, "/v1/responses", data, coding)
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert (error["code"], error["param"]) == ("invalid_body", "content-encoding")
    assert why in error["message"].lower()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd"])
def test_what_a_body_decodes_to_is_held_to_the_limit(http: httpx.Client, coding: str) -> None:
    fits = orjson.dumps({"model": "echo", "input": "x" * (LIMIT - 100), "store": False})
    assert len(fits) <= LIMIT
    r = post(http, "/v1/responses", CODINGS[coding](fits), coding)
    assert r.status_code == 200, r.text
    bomb = CODINGS[coding](b"[" + b" " * (100 * LIMIT) + b"]")  # 6.4 MB from a few KB
    assert len(bomb) < LIMIT // 8
    r = post(http, "/v1/responses", bomb, coding)
    assert r.status_code == 413
    error = error_of(r)
    assert error["code"] == "request_too_large"
    assert f"{LIMIT} bytes once decoded" in error["message"]
