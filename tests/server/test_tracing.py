"""OpenTelemetry traces from a real `respgate serve` to a real OTLP/HTTP receiver
(an HTTP server in the test that keeps each POST /v1/traces body, decoded with
opentelemetry-proto)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.live import SRC, running

ENV = {"RESPGATE_NO_OLLAMA_PROBE": "1"}


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.paths.append(self.path)
        self.server.exports.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_one_genai_span_per_response(tmp_path: Path, receiver: Receiver) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text(
        f'[telemetry]\notlp_endpoint = "{receiver.url}"\nservice_name = "gw-test"\n'
        "[store]\nenabled = false\n"
    )
    with running(ENV, "--config", str(config)) as server, server.client() as c:
        ok = c.post("/v1/responses", headers={"x-request-id": "trace-1"},
                    json={"model": "echo", "input": "one two three", "stream": True})  # fmt: skip
        assert ok.status_code == 200
        missing = c.post("/v1/responses", json={"model": "nope", "input": "x"})
        assert missing.status_code == 404
        server.stop()  # the exporter flushes at exit
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    spans = []
    for export in receiver.exports:
        for resource_spans in export.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
            assert resource["service.name"] == "gw-test"
            for scope_spans in resource_spans.scope_spans:
                spans += scope_spans.spans
    assert sorted(s.name for s in spans) == ["chat echo", "chat nope"]
    echo = next(s for s in spans if s.name == "chat echo")
    attrs = attributes(echo)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "echo"
    assert attrs["gen_ai.response.model"] == "echo"
    assert attrs["gen_ai.provider.name"] == "builtin" and attrs["gen_ai.system"] == "builtin"
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.id"].startswith("resp_")
    assert attrs["respgate.request_id"] == "trace-1"
    assert echo.end_time_unix_nano >= echo.start_time_unix_nano > 0
    assert [e.name for e in echo.events] == ["upstream_first_byte", "client_first_byte"]
    assert echo.status.code == 0  # unset: no error
    nope = next(s for s in spans if s.name == "chat nope")
    assert attributes(nope)["error.type"] == "model_not_found"
    assert nope.status.code == 2  # ERROR


def test_without_an_endpoint_opentelemetry_is_not_imported() -> None:
    code = (
        "import sys; from respgate import cli; from respgate.server import app; "
        "assert cli.tracing('', 'x') is None; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**ENV, "PYTHONPATH": SRC},
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
