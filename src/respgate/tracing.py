"""OpenTelemetry traces (GenAI semantic conventions), one span per response, sent
over OTLP/HTTP. Imported only when `[telemetry] otlp_endpoint` is set (the `otel`
extra: `pip install 'respgate[otel]'`).

The span is built once the response has ended, from the times the run recorded
(nothing is done per event): name `chat <model>`, kind CLIENT, start at acceptance,
end at the terminal event, events at the upstream's and the client's first byte,
status ERROR with `error.type` for a failed or rejected response.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from .observe import Observer, RunInfo
from .protocol.errors import ApiError

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector base URL (`http://collector:4318`)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class Tracing(Observer):
    def __init__(self, endpoint: str, service_name: str = "respgate") -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        self.tracer = self.provider.get_tracer("respgate")
        self._closed = False
        self._closing = threading.Lock()
        # perf_counter seconds -> Unix nanoseconds
        self._offset = time.time_ns() - int(time.perf_counter() * 1e9)

    def _ns(self, t: float) -> int:
        return int(t * 1e9) + self._offset

    def rejected(self, run: RunInfo, error: ApiError) -> None:
        self._span(run, error.code or str(error.status))

    def delivered(self, run: RunInfo) -> None:
        failed = run.status == "failed"
        self._span(run, (run.error_code or "error") if failed else None)

    def _span(self, run: RunInfo, error: str | None) -> None:
        usage = run.usage or {}
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": run.model,
            "respgate.transport": run.transport,
            "respgate.tenant": run.tenant,
            "respgate.status": run.status or "rejected",
            "respgate.retries": run.retries,
            "respgate.fallbacks": run.fallbacks,
        }
        optional = {
            "gen_ai.response.model": run.upstream_model,
            "gen_ai.response.id": run.response_id,
            "gen_ai.provider.name": run.provider,
            "gen_ai.system": run.provider,
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
            "respgate.request_id": run.request_id,
            "error.type": error,
        }
        attributes.update((k, v) for k, v in optional.items() if v is not None)
        span = self.tracer.start_span(
            f"chat {run.model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=self._ns(run.accepted_at),
        )
        for name, at in (
            ("upstream_first_byte", run.upstream_first_byte_at),
            ("client_first_byte", run.client_first_byte_at),
        ):
            if at is not None:
                span.add_event(name, timestamp=self._ns(at))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=self._ns(run.finished_at or time.perf_counter()))

    async def aclose(self) -> None:
        """Send what is buffered and stop (once; the engine may shut down twice)."""
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        with self._closing:
            if not self._closed:
                self._closed = True
                self.provider.force_flush()  # shutdown alone can drop a queued span
                self.provider.shutdown()
