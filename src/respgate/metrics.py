"""Prometheus metrics: an observer of the run lifecycle, an ASGI request counter and
a timing wrapper around the store, all writing to one registry that `GET /metrics`
renders (README "Metrics and logs" lists every series).

Label values are bounded: a model is labelled with the name it is routed under (a
built-in or exactly routed name, or the glob that routes it) and "other" otherwise;
an endpoint with its route's path template; a tenant comes from the configured keys.
Label children are looked up once and cached, so a response costs a few dict hits and
the observations themselves.

With `respgate serve --workers N` every worker writes its series to memory-mapped files
in one directory (prometheus_client's multiprocess mode, `multiprocess_dir`), and
`GET /metrics` on any worker renders the sum over all of them: counters and histograms
keep what dead workers counted, the in-flight gauge counts live workers only (the
supervisor calls `forget_worker` when one dies). The `process_*` series describe one
process, so a group leaves them out. Separate replicas are one scrape target each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Scope

from .observe import Observer, RunInfo, ToolUse
from .protocol.errors import ApiError
from .usage import tokens_of

CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
GATEWAY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)

# Codes of a failed response that are the gateway's or the client's doing, not the
# upstream's (everything else a failed response carries came from its provider).
NOT_UPSTREAM_CODES = frozenset(
    {
        "client_disconnected",
        "server_shutdown",
        "server_error",
        "cancelled",
        "websocket_connection_limit_reached",
    }
)
# The store methods timed (`follow` is a long-lived reader, not an operation).
STORE_OPERATIONS = (
    "save",
    "get",
    "load_chain",
    "get_item",
    "input_items",
    "delete",
    "append_events",
    "cancel",
    "recover",
    "expire",
)
MODEL_LABELS_CACHED = 4096
METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"})


def upstream_error_kind(code: str | None, *, opened: bool) -> str:
    """connect | timeout | status (an HTTP error before the stream) | mid_stream."""
    if code == "upstream_timeout":
        return "timeout"
    if not opened:
        return "connect" if code == "upstream_connect_error" else "status"
    return "mid_stream"


class Metrics(Observer):
    """Every respgate series, in its own registry. `model_label(name)` gives the bounded
    label of a model name, or None when nothing serves it ("other")."""

    def __init__(
        self,
        model_label: Callable[[str], str | None] = lambda _: None,
        *,
        multiprocess_dir: str | None = None,
    ) -> None:
        disable_created_metrics()  # no `_created` twin of every series
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None:  # one worker of a group: series in shared files
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
            values.ValueClass = values.MultiProcessValue()
        self._model_label = model_label
        self._model_labels: dict[str, str] = {}
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "respgate_requests", "HTTP requests by endpoint, model and status.",
            ["endpoint", "method", "model", "status"], registry=r,
        )  # fmt: skip
        self.responses = Counter(
            "respgate_responses", "Responses ended, by model, transport and final status "
            "(completed, incomplete, failed, cancelled; rejected: an HTTP error before the "
            "first byte).", ["model", "transport", "status"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "respgate_responses_in_flight", "Responses being generated, by transport.",
            ["transport"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.ttft = Histogram(
            "respgate_time_to_first_byte_seconds", "Accepted to the first client write that "
            "carries model output.", ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "respgate_response_duration_seconds", "Accepted to the terminal event.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.gateway_latency = Histogram(
            "respgate_gateway_latency_seconds", "Latency respgate adds: the upstream's first "
            "signal to the client write that carries it (streaming transports).",
            ["transport"], buckets=GATEWAY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "respgate_tokens", "Tokens by model, tenant and kind (input, output; reasoning "
            "is part of output, cached part of input).", ["model", "tenant", "kind"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "respgate_cost_usd", "Cost in USD by model and tenant, from the [prices] table "
            "(responses of unpriced models add nothing).", ["model", "tenant"], registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "respgate_upstream_errors", "Upstream failures by provider and kind (connect, "
            "status, timeout, mid_stream).", ["provider", "kind"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "respgate_upstream_retries", "Upstream attempts repeated at the same provider "
            "and model.", ["provider"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "respgate_upstream_fallbacks", "Fallback targets tried, by the provider fallen "
            "back to.", ["provider"], registry=r,
        )  # fmt: skip
        self.tool_uses = Counter(
            "respgate_mcp_operations", "Gateway-run MCP operations by server, tool (`-`: a "
            "listing) and outcome (ok, or the error type).", ["server", "tool", "outcome"],
            registry=r,
        )  # fmt: skip
        self.tool_seconds = Histogram(
            "respgate_mcp_operation_seconds", "Gateway-run MCP listing and call latency by "
            "server.", ["server"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.store_seconds = Histogram(
            "respgate_store_operation_seconds", "Store operation latency by operation.",
            ["operation"], buckets=STORE_BUCKETS, registry=r,
        )  # fmt: skip
        if multiprocess_dir is None:  # one process's own: left out of a group's merged view
            ProcessCollector(registry=r)  # process_cpu_seconds_total, memory, open fds (Linux)
            GCCollector(registry=r)  # python_gc_collections_total by generation, and more
        self._children: dict[tuple[Any, ...], Any] = {}
        self._flight = {t: self.in_flight.labels(t) for t in ("sse", "json", "websocket",
                                                              "background")}  # fmt: skip
        for child in self._flight.values():
            child.set(0)

    # ------------------------------------------------------------ labels

    def model(self, name: str | None) -> str:
        """The bounded label of a model name ("" for none, "other" when nothing serves it)."""
        if not name:
            return ""
        label = self._model_labels.get(name)
        if label is None:
            label = self._model_label(name) or "other"
            if len(self._model_labels) < MODEL_LABELS_CACHED:
                self._model_labels[name] = label
        return label

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ------------------------------------------------------------ the run lifecycle

    def accepted(self, run: RunInfo) -> None:
        self._gauge(run).inc()

    def rejected(self, run: RunInfo, error: ApiError) -> None:
        self._gauge(run).dec()
        self._child(self.responses, self.model(run.model), run.transport, "rejected").inc()
        self._attempts(run)

    def client_first_byte(self, run: RunInfo) -> None:
        assert run.client_first_byte_at is not None and run.upstream_first_byte_at is not None
        model = self.model(run.model)
        self._child(self.ttft, model).observe(run.client_first_byte_at - run.accepted_at)
        if run.transport in ("sse", "websocket"):
            latency = run.client_first_byte_at - run.upstream_first_byte_at
            self._child(self.gateway_latency, run.transport).observe(latency)

    def finished(self, run: RunInfo, response: dict[str, Any]) -> None:
        self._gauge(run).dec()
        model = self.model(run.model)
        self._child(self.responses, model, run.transport, run.status or "").inc()
        if run.finished_at is not None:
            self._child(self.duration, model).observe(run.finished_at - run.accepted_at)
        self._attempts(run)
        if (
            run.status == "failed"
            and run.upstream_opened_at is not None
            and run.error_code not in NOT_UPSTREAM_CODES
        ):
            kind = upstream_error_kind(run.error_code, opened=True)
            self._child(self.upstream_errors, run.provider or "", kind).inc()
        if run.usage:
            input_tokens, cached, output, reasoning = tokens_of(run.usage)
            counters = self._tokens(model, run.tenant)
            for counter, value in zip(
                counters, (input_tokens, output, reasoning, cached), strict=True
            ):
                if value:
                    counter.inc(value)
        if run.cost:
            self._child(self.cost, model, run.tenant).inc(run.cost)

    def tool_used(self, run: RunInfo, use: ToolUse) -> None:
        outcome = use.error or "ok"
        self._child(self.tool_uses, use.server, use.tool or "-", outcome).inc()
        self._child(self.tool_seconds, use.server).observe(use.seconds)

    def _gauge(self, run: RunInfo) -> Any:
        gauge = self._flight.get(run.transport)
        return gauge if gauge is not None else self._child(self.in_flight, run.transport)

    def _tokens(self, model: str, tenant: str) -> tuple[Any, ...]:
        key = ("tokens", model, tenant)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = tuple(
                self.tokens.labels(model, tenant, kind)
                for kind in ("input", "output", "reasoning", "cached")
            )
        return children

    def _attempts(self, run: RunInfo) -> None:
        """Upstream errors before the stream, retries and fallbacks, from the attempts."""
        seen: set[tuple[str, str]] = set()
        for attempt in run.attempts:
            target = (attempt.provider, attempt.upstream_model)
            if target in seen:
                self._child(self.retries, attempt.provider).inc()
            elif seen:
                self._child(self.fallbacks, attempt.provider).inc()
            seen.add(target)
            if attempt.error is not None:
                kind = upstream_error_kind(attempt.error, opened=False)
                self._child(self.upstream_errors, attempt.provider, kind).inc()

    # ------------------------------------------------------------ HTTP and the store

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, self.multiprocess_dir)
        return generate_latest(merged)

    def count_request(self, scope: Scope, status: int) -> None:
        """Count one ended HTTP request by endpoint (the matched route's path, "other"
        when none matched), method ("other" beyond the usual seven), model (what a
        handler left in `scope["state"]["model"]`) and status (`server.request_id.
        RequestLayer` tells it)."""
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "other"
        model = self.model(scope.get("state", {}).get("model"))
        method = scope["method"] if scope["method"] in METHODS else "other"
        self._child(self.requests, endpoint, method, model, str(status)).inc()

    def timed_store(self, store: Any) -> Any:
        """`store` with every operation's latency observed (one wrapper, one place)."""
        return TimedStore(store, self.store_seconds)


def forget_worker(multiprocess_dir: str, pid: int) -> None:
    """Drop a dead worker's share of the live gauges (its counters stay counted)."""
    multiprocess.mark_process_dead(pid, multiprocess_dir)


class TimedStore:
    """A `ResponseStore` whose operations are timed into a histogram by operation name;
    anything else (`follow`, `close`, attributes) is the wrapped store's own."""

    def __init__(self, store: Any, histogram: Histogram) -> None:
        self.store = store
        for name in STORE_OPERATIONS:
            setattr(self, name, _timed(getattr(store, name), histogram.labels(name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _timed(method: Callable[..., Any], child: Any) -> Callable[..., Any]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            child.observe(time.perf_counter() - start)

    return timed
