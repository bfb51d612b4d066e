"""A response served end to end leaves nothing of respgate's in a reference cycle.

Objects in a cycle are freed only by the cyclic garbage collector, and its runs are paid
by whatever allocates next: one cycle per stream (the upstream response and its parser)
cost ~0.1 ms of a stream's CPU at 64 streams (docs/design.md, "Issue 11, fourth pass").
Real HTTP both ways (fake Chat Completions upstreams, the server in a thread), a SQLite
store; streamed and whole, stored and not, a follow-up turn, a background response, an
upstream that answers 500 and one that cuts its stream short.
With `gc.DEBUG_SAVEALL`, everything a collection finds unreachable stays in `gc.garbage`,
where no object of a respgate type may be."""

from __future__ import annotations

import asyncio
import functools
import gc
from pathlib import Path

import httpx

import respgate
from respgate.config import Config, RouteConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.providers.router import Router
from respgate.store import open_store
from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
from tests.providers.support import provider
from tests.support.live import LiveServer
from tests.support.oracle import parse_sse

BODY = {"model": "m", "input": "hi"}
PACKAGE = str(Path(respgate.__file__).parent)


async def serve_each(client: httpx.AsyncClient) -> int:
    """Streamed (stored and not), whole, a follow-up turn, and a background response
    polled to its end; returns how many upstream calls that made."""
    for store in (True, False):
        r = await client.post("/v1/responses", json={**BODY, "stream": True, "store": store})
        assert r.status_code == 200, r.text
        assert parse_sse(r.content)[-1] == "[DONE]"
    r = await client.post("/v1/responses", json=BODY)
    assert r.json()["status"] == "completed", r.text
    r = await client.post("/v1/responses", json={**BODY, "previous_response_id": r.json()["id"]})
    assert r.json()["status"] == "completed", r.text
    r = await client.post("/v1/responses", json={**BODY, "background": True})
    response_id = r.json()["id"]
    for _ in range(500):
        r = await client.get(f"/v1/responses/{response_id}")
        if r.json()["status"] not in ("queued", "in_progress"):
            break
        await asyncio.sleep(0.01)
    assert r.json()["status"] == "completed", r.text
    return 5


def respgate_objects(objects: list[object]) -> list[str]:
    """The instances of respgate's classes among `objects`, and the functions, frames and
    coroutines of its code."""
    found = set()
    for o in objects:
        if type(o).__module__.startswith("respgate."):
            found.add(type(o).__qualname__)
            continue
        code = next(
            (getattr(o, a) for a in ("__code__", "f_code", "cr_code", "gi_code", "ag_code")
             if hasattr(o, a)), None,
        )  # fmt: skip
        if code is not None and code.co_filename.startswith(PACKAGE):
            found.add(f"{type(o).__name__} {code.co_qualname}")
    return sorted(found)


async def serve_failures(client: httpx.AsyncClient) -> None:
    """An upstream error before the stream (a 502), and a stream the upstream cut short
    (`response.failed`)."""
    r = await client.post("/v1/responses", json={**BODY, "model": "down", "stream": True})
    assert r.status_code == 502, r.text
    r = await client.post("/v1/responses", json={**BODY, "model": "cut", "stream": True})
    events = parse_sse(r.content)
    assert events[-2]["type"] == "response.failed" and events[-1] == "[DONE]"


async def test_served_responses_leave_no_reference_cycle(tmp_path: Path) -> None:
    text = fixture("chat_completions", "text")
    async with (
        FakeUpstream(Reply(text)) as upstream,
        FakeUpstream(Reply.error(500, "boom")) as down,
        FakeUpstream(Reply(text, drop_after=len(text) // 2)) as cut,
    ):
        config = Config(
            {
                "up": provider("up", "chat_completions", upstream.url),
                "down": provider("down", "chat_completions", down.url),
                "cut": provider("cut", "chat_completions", cut.url),
            },
            [RouteConfig(name, name if name != "m" else "up") for name in ("m", "down", "cut")],
        )
        engine = Engine(
            ProviderRegistry(Router(config)), store=functools.partial(open_store, tmp_path)
        )
        with LiveServer(engine) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                calls = await serve_each(client)  # first uses: pools, caches, tables
                await serve_failures(client)
                gc.collect()
                gc.set_debug(gc.DEBUG_SAVEALL)
                try:
                    for _ in range(3):
                        calls += await serve_each(client)
                        await serve_failures(client)
                    gc.collect()
                    found = respgate_objects(gc.garbage)
                finally:
                    gc.set_debug(0)
                    gc.garbage.clear()
    assert found == []
    assert len(upstream.requests) == calls
    assert len(down.requests) == len(cut.requests) == 4
