"""`respgate check` against respgate's own server (echo model), and against
deliberately broken streams: a proxy in front of the same app that breaks
one rule in every stream it passes on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from respgate.check import check_file, check_url
from respgate.cli import main
from respgate.server.app import create_app
from tests.support.live import SRC, free_port
from tests.support.stores import sqlite_engine

Frames = list[bytes]


def _type(frame: bytes) -> str | None:
    for line in frame.split(b"\n"):
        if line.startswith(b"data: {"):
            return json.loads(line[6:])["type"]
    return None


def _map_data(frame: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    head, _, rest = frame.partition(b"\ndata: ")
    event = json.loads(rest.strip())
    change(event)
    return head + b"\ndata: " + json.dumps(event).encode() + b"\n\n"


def omit_added(frames: Frames) -> Frames:
    i = next(n for n, f in enumerate(frames) if _type(f) == "response.output_item.added")
    return frames[:i] + frames[i + 1 :]


def reorder_sequence_numbers(frames: Frames) -> Frames:
    return [frames[0], frames[2], frames[1], *frames[3:]]


def change_item_id(frames: Frames) -> Frames:
    i = next(n for n, f in enumerate(frames) if _type(f) == "response.output_item.done")
    frames = list(frames)
    frames[i] = _map_data(frames[i], lambda e: e["item"].update(id=e["item"]["id"] + "x"))
    return frames


def drop_done(frames: Frames) -> Frames:
    return [f for f in frames if f != b"data: [DONE]\n\n"]


def crlf_split_mid_line(frames: Frames) -> Frames:
    """CRLF framing, with a CRLF inside the first data line (the JSON is cut in two)."""
    first = frames[0].replace(b"\n", b"\r\n")
    cut = first.index(b"data: ") + 30
    return [first[:cut] + b"\r\n" + first[cut:], *(f.replace(b"\n", b"\r\n") for f in frames[1:])]


def no_terminal_event(frames: Frames) -> Frames:
    terminals = ("response.completed", "response.incomplete", "response.failed")
    return [f for f in frames if _type(f) not in terminals and f != b"data: [DONE]\n\n"]


def crlf_split_between_cr_and_lf(frames: Frames) -> Frames:
    """Valid: CRLF framing, chunked so that every CR ends a chunk and its LF starts the next."""
    body = b"".join(frames).replace(b"\n", b"\r\n")
    return [piece + b"\r" for piece in body.split(b"\r")[:-1]]


BREAKAGES: dict[str, Callable[[Frames], Frames]] = {
    "omit_added": omit_added,
    "reorder_sequence_numbers": reorder_sequence_numbers,
    "change_item_id": change_item_id,
    "drop_done": drop_done,
    "crlf_split_mid_line": crlf_split_mid_line,
    "no_terminal_event": no_terminal_event,
    "valid_crlf_chunks": crlf_split_between_cr_and_lf,
}


def proxy_app(upstream: Starlette) -> Starlette:
    """`/{breakage}/v1/responses`: respgate's reply, its stream passed through `breakage`."""

    async def handle(request: Request) -> Response:
        breakage = BREAKAGES[request.path_params["breakage"]]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=upstream), base_url="http://up"
        ) as client:
            reply = await client.post(
                "/v1/responses",
                content=await request.body(),
                headers={"content-type": "application/json"},
            )
        if not reply.headers["content-type"].startswith("text/event-stream"):
            return Response(
                reply.content, reply.status_code, media_type=reply.headers["content-type"]
            )
        frames = [f + b"\n\n" for f in reply.content.split(b"\n\n")[:-1] if not f.startswith(b":")]

        async def body() -> Any:
            for chunk in breakage(frames):
                yield chunk

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/{breakage}/v1/responses", handle, methods=["POST"])])


def serve(app: Starlette) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def respgate_app(tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    return create_app(sqlite_engine(tmp_path_factory.mktemp("store")))


@pytest.fixture(scope="module")
def respgate_url(respgate_app: Starlette) -> Iterator[str]:
    yield from serve(respgate_app)


@pytest.fixture(scope="module")
def proxy_url(respgate_app: Starlette) -> Iterator[str]:
    yield from serve(proxy_app(respgate_app))


def failed_rules(report: Any) -> set[str]:
    return {rule for rule, _, findings in report.rules() if findings}


def test_passes_against_respgate_with_echo(respgate_url: str) -> None:
    report = check_url(respgate_url + "/v1", model="echo")
    assert failed_rules(report) == set(), [str(f) for c in report.cases for f in c.findings]
    assert [c.name for c in report.cases if c.skipped] == []
    assert report.passed


@pytest.mark.parametrize(
    ("breakage", "rule"),
    [
        ("omit_added", "lifecycle"),
        ("reorder_sequence_numbers", "sequence_number"),
        ("change_item_id", "item_id"),
        ("drop_done", "done"),
        ("crlf_split_mid_line", "json"),
        ("no_terminal_event", "terminal"),
    ],
)
def test_fails_naming_the_rule(proxy_url: str, breakage: str, rule: str) -> None:
    report = check_url(f"{proxy_url}/{breakage}/v1", model="echo")
    assert not report.passed
    assert rule in failed_rules(report)
    # The non-streaming and invalid-input cases do not stream, so they still pass.
    assert {c.name for c in report.cases if c.passed} >= {"non_streaming", "invalid_input"}


def test_valid_crlf_split_between_cr_and_lf_passes(proxy_url: str) -> None:
    report = check_url(f"{proxy_url}/valid_crlf_chunks/v1", model="echo")
    assert failed_rules(report) == set()


def test_cli_json_and_exit_code(
    proxy_url: str, respgate_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", f"{proxy_url}/drop_done/v1", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is False
    done = next(r for r in out["rules"] if r["rule"] == "done")
    assert done["findings"][0]["message"] == "the stream did not end with data: [DONE]"
    assert main(["check", f"{respgate_url}/v1"]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_no_done_accepts_a_stream_without_done_and_nothing_else(
    proxy_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--no-done` (OpenAI sends no `[DONE]`) lifts exactly that one rule."""
    assert main(["check", f"{proxy_url}/drop_done/v1", "--no-done"]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["check", f"{proxy_url}/no_terminal_event/v1", "--no-done"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "terminal" in out
    body = {"model": "echo", "input": "hello there", "stream": True}
    capture = httpx.post(f"{proxy_url}/drop_done/v1/responses", json=body).content
    assert b"[DONE]" not in capture
    path = tmp_path / "no_done.sse"
    path.write_bytes(capture)
    assert main(["check", "--file", str(path)]) == 1
    capsys.readouterr()
    assert main(["check", "--file", str(path), "--no-done"]) == 0


def test_check_file(tmp_path: Path, respgate_url: str) -> None:
    body = {"model": "echo", "input": "hello there", "stream": True}
    capture = httpx.post(f"{respgate_url}/v1/responses", json=body).content
    good = tmp_path / "good.sse"
    good.write_bytes(capture)
    assert check_file(str(good)).passed
    frames = [f + b"\n\n" for f in capture.split(b"\n\n")[:-1]]
    broken = tmp_path / "broken.sse"
    broken.write_bytes(b"".join(change_item_id(frames))[:-1])  # and cut the last blank line
    assert failed_rules(check_file(str(broken))) == {"item_id", "snapshot", "sse_framing", "done"}


def test_framing_findings_for_id_retry_and_dataless_blocks(
    tmp_path: Path, respgate_url: str
) -> None:
    body = {"model": "echo", "input": "hi", "stream": True}
    capture = httpx.post(f"{respgate_url}/v1/responses", json=body).content
    path = tmp_path / "c.sse"
    path.write_bytes(b"id: 1\nretry: 10\n\nevent: ping\n\n" + capture)
    messages = [f.message for f in check_file(str(path)).cases[0].findings]
    assert messages == [
        "id: fields are sent (clients then dispatch empty events on stray blank lines)",
        "a retry: field is sent",
        "1 event: block(s) without data",
    ]


def test_event_name_must_equal_type(tmp_path: Path, respgate_url: str) -> None:
    body = {"model": "echo", "input": "hi", "stream": True}
    capture = httpx.post(f"{respgate_url}/v1/responses", json=body).content
    path = tmp_path / "c.sse"
    path.write_bytes(capture.replace(b"event: response.in_progress\n", b"", 1))
    report = check_file(str(path))
    assert failed_rules(report) == {"event_name"}
    assert (
        str(report.cases[0].findings[0])
        == "file #1 response.in_progress: event: 'message' but type 'response.in_progress'"
    )


def run_check(*args: str, **popen: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "respgate", "check", *args],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--file", "missing.sse"), "respgate check: cannot read missing.sse (No such file"),
        (("not-a-url",), "respgate check: 'not-a-url' is not an http:// or https:// URL"),
        (("http://[::1",), "respgate check: 'http://[::1' is not a valid URL"),
        ((), "respgate check: give a URL or --file"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    out, err = run_check(*args).communicate(timeout=60)
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_an_unreachable_server_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = run_check(url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert err.strip() == f"respgate check: cannot reach {url} (Connection refused)"


def test_a_reader_that_leaves_early_is_no_traceback() -> None:
    """`respgate check --json ... | head`: the pipe closes before the report is written."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "responses" / "text.sse"
    proc = run_check("--file", str(fixture), "--json")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(60) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    "hosted", ["web_search", "file_search", "image_generation", "code_interpreter"]
)
async def test_hosted_items_through_respgate_pass(tmp_path: Path, hosted: str) -> None:
    """OpenAI's hosted-tool and MCP items, which the Open Responses schema does not define,
    are not schema findings: respgate relaying a native Responses upstream passes."""
    from tests.providers.fake_upstream import FakeUpstream, Reply, fixture
    from tests.server.test_reasoning_carrier import engine_for
    from tests.support.live import LiveServer

    async with FakeUpstream(Reply(fixture("responses", hosted))) as up:
        with LiveServer(engine_for({"m": ("responses", up.url)})) as server:
            async with httpx.AsyncClient(timeout=10) as c:
                body = {"model": "m", "input": "go", "stream": True}
                capture = (await c.post(f"{server.url}/v1/responses", json=body)).content
    path = tmp_path / f"{hosted}.sse"
    path.write_bytes(capture)
    assert f'"type":"{hosted}_call"'.encode() in capture  # the hosted item came through
    report = check_file(str(path))
    assert report.passed, [str(f) for f in report.cases[0].findings]
