"""The console's JSON endpoints and `GET /v1/responses` over real HTTP: what each key sees
(a tenant its own, an admin every tenant's), live runs and their tapped events with the
checker's verdict, stored responses with the request's secrets removed."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import httpx
import orjson

from respgate.config import McpConfig
from respgate.console import redact
from tests.console.support import ADMIN, SLOW, A, B, background_with_a_broken_log, console_server
from tests.support.live import running


async def create(c: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await c.post(
        "/v1/responses", json={"model": "echo", "input": "hi", **body}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_list_shows_each_tenant_its_own_and_the_admin_all(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            a = await create(c, A, input="from a")
            b = await create(c, B, input="from b")
            listed = {k: (await c.get("/v1/responses", headers=h)).json() for k, h in
                      (("a", A), ("b", B), ("admin", ADMIN))}  # fmt: skip
            assert [r["id"] for r in listed["a"]["data"]] == [a["id"]]
            assert [r["id"] for r in listed["b"]["data"]] == [b["id"]]
            assert {(r["id"], r["tenant"]) for r in listed["admin"]["data"]} == {
                (a["id"], "team-a"),
                (b["id"], "team-b"),
            }
            # B cannot open A's response through the console either, even naming the tenant
            for path in (f"/console/api/responses/{a['id']}",
                         f"/console/api/responses/{a['id']}?tenant=team-a"):  # fmt: skip
                r = await c.get(path, headers=B)
                assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"
            r = await c.delete(f"/console/api/responses/{a['id']}?tenant=team-a", headers=B)
            assert r.status_code == 404
            # the admin opens it by naming its tenant, and deletes it
            r = await c.get(f"/console/api/responses/{a['id']}?tenant=team-a", headers=ADMIN)
            assert r.status_code == 200 and r.json()["response"]["id"] == a["id"]
            r = await c.delete(f"/console/api/responses/{a['id']}?tenant=team-a", headers=ADMIN)
            assert r.json()["deleted"] is True
            assert (await c.get("/v1/responses", headers=A)).json()["data"] == []


async def test_conversations_list_each_tenant_its_own(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            a = (await c.post("/v1/conversations", json={}, headers=A)).json()
            b = (await c.post("/v1/conversations", json={}, headers=B)).json()
            listed = {k: (await c.get("/v1/conversations", headers=h)).json()["data"]
                      for k, h in (("a", A), ("b", B), ("admin", ADMIN))}  # fmt: skip
            assert listed["a"] == [a] and listed["b"] == [b]
            assert sorted((x["id"], x["tenant"]) for x in listed["admin"]) == sorted(
                [(a["id"], "team-a"), (b["id"], "team-b")]
            )
            r = await c.get("/v1/conversations?limit=500", headers=A)
            assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


async def test_list_filters_and_names_a_bad_param(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            done = await create(c, A)
            failed = await create(c, A, metadata={"echo_scenario": "fail"})
            r = await c.get("/v1/responses?status=failed", headers=A)
            assert [x["id"] for x in r.json()["data"]] == [failed["id"]]
            r = await c.get("/v1/responses?model=echo&limit=1", headers=A)
            page = r.json()
            assert page["has_more"] and len(page["data"]) == 1
            r = await c.get(f"/v1/responses?after={page['last_id']}", headers=A)
            rest = r.json()
            # one second holds both: they are ordered by id there, and the pages cover both
            assert not rest["has_more"]
            assert sorted([page["last_id"], *(x["id"] for x in rest["data"])]) == sorted(
                [done["id"], failed["id"]]
            )
            assert (await c.get("/v1/responses?model=other", headers=A)).json()["data"] == []
            created = done["created_at"]
            r = await c.get(f"/v1/responses?created_after={created + 3600}", headers=A)
            assert r.json()["data"] == []
            for query, param in (("status=done", "status"), ("limit=0", "limit"),
                                 ("created_after=yesterday", "created_after")):  # fmt: skip
                r = await c.get(f"/v1/responses?{query}", headers=A)
                assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
            assert (await c.get("/v1/responses")).status_code == 401


async def sse(response: httpx.Response) -> Any:
    """(event name, data) of each frame of a console stream."""
    name = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, orjson.loads(line[6:])


async def test_live_runs_and_their_events_as_they_stream(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            async with c.stream("GET", "/console/api/live?stream=true", headers=A) as watch:
                frames = sse(watch)
                assert await anext(frames) == ("live", {"object": "list", "data": []})
                body = {"model": "echo", "input": "x", "stream": True, "metadata": SLOW}
                async with c.stream("POST", "/v1/responses", json=body, headers=A) as run:
                    async for _, live in frames:  # the run shows up while it streams
                        if live["data"]:
                            break
                    (row,) = live["data"]
                    assert row["tenant"] == "team-a" and row["status"] == "in_progress"
                    # B sees neither the run nor its events
                    assert (await c.get("/console/api/live", headers=B)).json()["data"] == []
                    r = await c.get(f"/console/api/runs/{row['id']}/events", headers=B)
                    assert r.status_code == 404
                    path = f"/console/api/runs/{row['id']}/events?stream=true"
                    async with c.stream("GET", path, headers=A) as tapped:
                        got = [f async for f in sse(tapped)]
                    # the stream being watched was still running when the tap had deltas
                    assert not run.is_closed
                    await run.aread()
            names = [name for name, _ in got]
            events = [data for name, data in got if name == "event"]
            assert names[-2:] == ["run", "verdict"]
            assert [e["index"] for e in events] == list(range(len(events)))
            assert events[0]["event"]["type"] == "response.created"
            assert events[-1]["event"]["type"] == "response.completed"
            assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(events))
            assert got[-1][1] == {"checked": True, "final": True, "violations": []}
            assert got[-2][1]["status"] == "completed" and got[-2][1]["usage"]["output_tokens"]
            # the admin sees the finished run too
            (admin_row,) = (await c.get("/console/api/live", headers=ADMIN)).json()["data"]
            assert admin_row["id"] == row["id"] and admin_row["duration_ms"] > 0


async def test_a_failed_stream_has_its_error_event_and_a_clean_verdict(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            async with c.stream("GET", "/console/api/live?stream=true", headers=A) as watch:
                await anext(sse(watch))
                failed = await create(c, A, metadata={"echo_scenario": "fail"})
                r = await c.get(f"/console/api/runs/{failed['id']}/events", headers=A)
            body = r.json()
            types = [e["event"]["type"] for e in body["events"]]
            assert types[-2:] == ["error", "response.failed"]
            assert body["run"]["error_code"] == "server_error"
            assert body["verdict"]["violations"] == []
            # an MCP tool's secret: never echoed by the API (toolloop), never in the console
            server.engine.mcp = McpConfig(allowed_hosts=("mcp.invalid",))
            tool = {"type": "mcp", "server_label": "x", "server_url": "https://mcp.invalid",
                    "authorization": "sk-mcp-secret"}  # fmt: skip
            r = await c.post("/v1/responses", headers=A,
                             json={"model": "echo", "input": "hi", "tools": [tool]})  # fmt: skip
            assert r.status_code == 200 and "sk-mcp-secret" not in r.text
            assert r.json()["tools"][0]["server_url"] == "https://mcp.invalid"
            tapped = await c.get(f"/console/api/runs/{r.json()['id']}/events", headers=ADMIN)
            assert tapped.status_code == 200 and "sk-mcp-secret" not in tapped.text
            shown = await c.get(f"/console/api/responses/{r.json()['id']}", headers=A)
            assert "sk-mcp-secret" not in shown.text and shown.json()["request"]["tools"]
            # the stored response carries the same verdict
            stored = (await c.get(f"/console/api/responses/{failed['id']}", headers=A)).json()
            assert stored["verdict"] == body["verdict"]
            assert stored["request"]["input"][0]["content"][0]["text"] == "hi"


async def test_a_stored_event_log_gets_the_verdict_at_the_broken_event(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        response_id, position = await asyncio.to_thread(
            background_with_a_broken_log, server, tmp_path
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            body = (await c.get(f"/console/api/responses/{response_id}", headers=A)).json()
            assert body["events"][position]["event"]["sequence_number"] == 99
            verdict = body["verdict"]
            assert verdict["checked"] and verdict["final"]
            assert {(v["rule"], v["index"]) for v in verdict["violations"]} >= {
                ("sequence_number", position)
            }
            r = await c.get(f"/console/api/responses/{response_id}", headers=B)
            assert r.status_code == 404


async def test_nothing_is_recorded_while_nobody_watches(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            done = await create(c, A)
            r = await c.get(f"/console/api/runs/{done['id']}/events", headers=A)
            assert r.status_code == 404 and r.json()["error"]["code"] == "run_not_found"
            assert (await c.get("/console/api/live", headers=A)).json()["data"] == []


async def test_the_console_is_off_unless_enabled(tmp_path: Path) -> None:
    with console_server(tmp_path, console=False) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            for path in ("/console", "/console/api/live", "/console/static/console.js"):
                assert (await c.get(path, headers=A)).status_code == 404
            # the list is part of the API, console or not
            assert (await c.get("/v1/responses", headers=A)).json()["data"] == []


def test_the_request_is_shown_without_secrets() -> None:
    tool = {"type": "mcp", "server_label": "x", "authorization": "sk-live",
            "headers": {"X-Api-Key": "k"}}  # fmt: skip
    item = {"type": "compaction", "encrypted_content": "rg1.abcdef"}
    shown = redact({"tools": [tool], "input": [item], "max_output_tokens": 5})
    assert shown["tools"][0]["authorization"] == shown["tools"][0]["headers"] == "[removed]"
    assert shown["input"][0]["encrypted_content"] == "[sealed]"
    assert shown["max_output_tokens"] == 5 and shown["tools"][0]["server_label"] == "x"
    assert "sk-live" not in repr(shown)


async def test_check_runs_the_battery_against_this_server(tmp_path: Path) -> None:
    with console_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as c:
            # the server checks itself at the address it listens on, whatever the Host says
            r = await c.post("/console/api/check", json={}, headers={**A, "host": "x.invalid"})
            assert r.status_code == 200, r.text
            report = r.json()
            assert report["passed"], [x for x in report["rules"] if not x["passed"]]
            assert {x["rule"] for x in report["rules"]} >= {"sequence_number", "terminal"}
            r = await c.post("/console/api/check", json={"url": server.url + "/v1"}, headers=A)
            assert r.status_code == 403  # another server: admin keys only
            r = await c.post("/console/api/check", content=b"{oops", headers=A)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
            r = await c.post("/console/api/check", json={"url": "ftp://x"}, headers=ADMIN)
            assert r.status_code == 400 and r.json()["error"]["param"] == "url"


def test_respgate_serve_serves_the_console_when_the_config_enables_it(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text("[console]\nenabled = true\n")
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data"), "RESPGATE_NO_OLLAMA_PROBE": "1"}
    with running(env, "--config", str(config)) as server, server.client() as c:
        page = c.get("/console")
        assert page.status_code == 200 and "console.js" in page.text
        script = c.get("/console/static/console.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert c.get("/console/api/live").json() == {"object": "list", "data": []}
