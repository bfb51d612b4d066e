"""Structured logs and x-request-id, from a real `respgate serve` process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.live import SRC, running
from tests.support.oracle import parse_sse

ENV = {"RESPGATE_NO_OLLAMA_PROBE": "1"}


def response_lines(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-response lines by request id (each request id appears once)."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line["logger"] == "respgate.response":
            assert line["request_id"] not in found, line
            found[line["request_id"]] = line
    return found


def test_json_mode_one_line_per_response(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    env = {**ENV, "RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with log.open("wb") as sink, running(env, "--log-format", "json", "--log-level", "info",
                                         stderr=sink) as server, server.client() as c:  # fmt: skip
        streamed = c.post("/v1/responses", headers={"x-request-id": "req-stream-1"},
                          json={"model": "echo", "input": "one two three", "stream": True})  # fmt: skip
        plain = c.post("/v1/responses", json={"model": "echo", "input": "four five"})
        failed = c.post("/v1/responses", headers={"x-request-id": "req-fail"},
                        json={"model": "echo", "input": "a b c d", "stream": True,
                              "metadata": {"echo_scenario": "fail"}})  # fmt: skip
        missing = c.post("/v1/responses", headers={"x-request-id": "req-404"},
                         json={"model": "nope", "input": "x"})  # fmt: skip
        server.stop()  # flushes the log
    assert streamed.headers["x-request-id"] == "req-stream-1"
    generated = plain.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert failed.headers["x-request-id"] == "req-fail"
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "req-404"

    text = log.read_text()
    lines = [orjson.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(line["logger"] == "uvicorn.access" for line in lines)  # uvicorn's too
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    by_id = response_lines(lines)
    assert set(by_id) == {"req-stream-1", generated, "req-fail", "req-404"}

    final = parse_sse(streamed.content)[-2]
    assert isinstance(final, dict)
    done = final["response"]
    line = by_id["req-stream-1"]
    assert line["level"] == "info"
    assert line["id"] == done["id"] and line["message"] == f"response {done['id']} completed"
    assert line["tenant"] == "" and line["model"] == "echo" and line["transport"] == "sse"
    assert line["provider"] == "builtin" and line["upstream_model"] == "echo"
    assert line["status"] == "completed" and line["error_code"] is None
    assert line["input_tokens"] == done["usage"]["input_tokens"]
    assert line["output_tokens"] == done["usage"]["output_tokens"]
    assert line["cached_tokens"] == 0 and line["reasoning_tokens"] == 0
    assert line["retries"] == 0 and line["fallbacks"] == 0 and line["cost_usd"] is None
    assert line["ttft_ms"] > 0 and line["duration_ms"] > 0

    plain_line = by_id[generated]
    assert plain_line["id"] == plain.json()["id"] and plain_line["transport"] == "json"
    assert plain_line["output_tokens"] == plain.json()["usage"]["output_tokens"]

    failed_events = parse_sse(failed.content)
    error = next(e for e in failed_events if isinstance(e, dict) and e["type"] == "error")
    assert by_id["req-fail"]["status"] == "failed"
    assert by_id["req-fail"]["error_code"] == error["code"]

    rejected = by_id["req-404"]
    assert rejected["status"] == "rejected" and rejected["error_code"] == "model_not_found"
    assert rejected["http_status"] == 404 and rejected["id"] is None


def test_insane_request_ids_are_replaced(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with log.open("wb") as sink, running(ENV, stderr=sink) as server, server.client() as c:
        sane = "Ab-9_:./~" * 14  # 126 printable characters
        cases = {sane: True, "x" * 129: False, "has space": False, "": False, "tab\tid": False}
        for sent, kept in cases.items():
            r = c.get("/v1/models", headers={"x-request-id": sent})
            assert r.status_code == 200
            got = r.headers["x-request-id"]
            assert (got == sent) is kept
            if not kept:
                assert re.fullmatch(r"[0-9a-f]{32}", got)
        unknown_path = c.get("/nowhere")
        assert unknown_path.status_code == 404 and "x-request-id" in unknown_path.headers
        assert c.post("/v1/responses", json={"model": "echo", "input": "x"}).status_code == 200
        server.stop()
    assert "respgate.response" not in log.read_text()  # --log-level warning: no response lines


def test_server_table_turns_metrics_off_and_sets_the_log_format(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text('[server]\nmetrics = false\nlog_format = "json"\n[store]\nenabled = false\n')
    log = tmp_path / "stderr.log"
    with log.open("wb") as sink, running(ENV, "--config", str(config), "--log-level", "info",
                                         stderr=sink) as server:  # fmt: skip
        with server.client() as c:
            assert c.get("/metrics").status_code == 404
            assert c.post("/v1/responses", json={"model": "echo", "input": "hi"}).status_code == 200
        server.stop()
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert [line["status"] for line in lines if line["logger"] == "respgate.response"] == [
        "completed"
    ]


def test_text_mode_response_line(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with log.open("wb") as sink, running({**ENV, "RESPGATE_DATA_DIR": str(tmp_path)},
                                         "--log-level", "INFO", stderr=sink) as server, server.client() as c:  # fmt: skip
        r = c.post("/v1/responses", json={"model": "echo", "input": "hi"},
                   headers={"x-request-id": "text-1"})  # fmt: skip
        assert c.get("/metrics").status_code == 200  # on by default, open without keys
        server.stop()
    line = next(x for x in log.read_text().splitlines() if "respgate.response" in x)
    assert f"respgate.response: response {r.json()['id']} completed request_id=text-1 " in line
    assert " model=echo " in line and " provider=builtin " in line and "error_code=- " in line


# Each error names the key path (the wording is the config decoder's).
BAD_SETTINGS = [
    ('[server]\nlog_format = "xml"\n', "server.log_format"),
    ('[server]\nmetrics = "yes"\n', "server.metrics"),
    ('[telemetry]\notlp_endpoint = "collector:4318"\n', "telemetry.otlp_endpoint"),
    ('[[keys]]\ntenant = "a"\nkey = "0123456789abcdefghijk"\nadmin = "yes"\n', "admin"),
]


@pytest.mark.parametrize(("toml", "message"), BAD_SETTINGS)
def test_bad_settings_are_a_start_up_error(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text(toml)
    done = subprocess.run(
        [sys.executable, "-m", "respgate", "serve", "--config", str(config)],
        env={**ENV, "PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
