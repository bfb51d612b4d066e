"""The `respgate` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import functools
import gc
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import uvicorn

from . import __version__, chat, check, logs
from .config import (
    DEFAULT_DATA_DIR,
    OLLAMA_URL,
    Config,
    ConfigError,
    McpConfig,
    RouteConfig,
    example,
    load_config,
)
from .engine import Engine
from .limits import Limits
from .limits import from_config as limits_from_config
from .metrics import Metrics, forget_worker
from .observe import Observer
from .providers.registry import ProviderRegistry
from .providers.router import Router
from .seal import decode_key
from .server.app import create_app
from .server.edge import EdgeLimits, server_config
from .store import StoreError, UsageTotal, is_database_url, lock_group, open_store, read_usage
from .store.keys import ApiKeys, KeyConfigError
from .usage import Prices
from .workers import MAX_DEFAULT_WORKERS, Supervisor, default_workers

SHUTDOWN_GRACE_SECONDS = 10.0

log = logging.getLogger("respgate")


def store_location(config: Config, environ: Mapping[str, str] = os.environ) -> str:
    """`RESPGATE_DATABASE_URL`, else `[store] database_url`, else the SQLite data directory
    (`RESPGATE_DATA_DIR`, else `[store] data_dir`, else `./data`)."""
    return (
        environ.get("RESPGATE_DATABASE_URL")
        or config.store.database_url
        or environ.get("RESPGATE_DATA_DIR")
        or config.store.data_dir
        or DEFAULT_DATA_DIR
    )


def seal_key(config: Config, environ: Mapping[str, str] = os.environ) -> bytes | None:
    """`RESPGATE_SEAL_KEY`, else `[server] seal_key` (base64), else None (the store's)."""
    text = environ.get("RESPGATE_SEAL_KEY") or config.server.seal_key
    if not text:
        return None
    try:
        return decode_key(text)
    except ValueError as exc:
        raise ConfigError(f"RESPGATE_SEAL_KEY: {exc}") from None


def retention_seconds(config: Config) -> float | None:
    days = config.store.retention_days
    return None if days < 0 else days * 86400


def limits_and_prices(config: Config) -> tuple[Limits, Prices]:
    """`[limits]` and `[prices]` as the engine takes them (per-key limits: `ApiKeys`)."""
    return limits_from_config(config.limits), Prices.from_config(config.prices)


def build_engine(
    config: Config,
    registry: ProviderRegistry | None = None,
    *,
    metrics: Metrics | None = None,
    observers: Sequence[Observer] = (),
    shared: bool = False,
) -> Engine:
    """The engine with every provider and store the configuration names; with `metrics`,
    the store's operations are timed; `shared`: one of a group of workers (`--workers`)."""
    location = store_location(config)
    retention = retention_seconds(config)
    limits, prices = limits_and_prices(config)

    async def opener() -> Any:
        opened = await open_store(location, retention=retention, shared=shared)
        return opened if metrics is None else metrics.timed_store(opened)

    registry = registry or ProviderRegistry(Router(config))
    return Engine(
        registry,
        opener if config.store.enabled else None,
        limits=limits,
        prices=prices,
        observers=observers,
        seal_key=seal_key(config),
        reasoning_events=config.server.reasoning_events,
        mcp=config.mcp,
    )


def load(path: str | None, environ: Mapping[str, str] = os.environ) -> tuple[Config, ApiKeys]:
    """The configuration and the API keys it names; raises ConfigError or KeyConfigError."""
    config = load_config(path, environ)
    return config, ApiKeys.from_config(config.keys, environ)


def tracing(endpoint: str, service: str) -> Callable[[], Observer] | None:
    """What makes the OpenTelemetry observer (in each serving process: its exporter runs a
    thread, which a fork would not carry), imported only when an endpoint is configured."""
    if not endpoint:
        return None
    try:
        from .tracing import Tracing
    except ImportError as exc:
        raise ConfigError(
            f"telemetry.otlp_endpoint: needs the otel extra, pip install 'respgate[otel]' ({exc})"
        ) from None
    return functools.partial(Tracing, endpoint, service)


def check_store(config: Config, *, shared: bool = False) -> str | None:
    """Open and close the configured store once before serving, so that a data directory
    in use or an unreachable database is one clear line at start-up, not a traceback.
    `shared`: the caller holds the data directory for its workers (`lock_group`)."""
    if not config.store.enabled:
        return None
    location = store_location(config)

    async def probe() -> None:
        store = await open_store(location, recover=False, shared=shared)
        await store.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"cannot open the store at {redact(location)}: {exc}"
    return None


def redact(location: str) -> str:
    """A store location with any password in a database URL masked."""
    parts = urllib.parse.urlsplit(location)
    if not parts.password:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def describe_store(config: Config) -> str:
    if not config.store.enabled:
        return "off (nothing is kept)"
    location = store_location(config)
    days = config.store.retention_days
    kept = "background responses kept forever" if days < 0 else f"retention {days:g} days"
    kind = "postgresql" if is_database_url(location) else "sqlite"
    return f"{kind} {redact(location)} ({kept})"


def describe_route(route: RouteConfig) -> str:
    targets = [(route.provider, route.upstream_model)]
    targets += [(t.provider, t.upstream_model) for t in route.fallbacks]
    text = ", then ".join(f"{p}/{m}" if m else p for p, m in targets)
    return f"{route.model} -> {text}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def describe_mcp(mcp: McpConfig) -> str:
    """`[mcp]` in one line: the named servers, what client URLs may reach, who runs the
    tools on a route of Responses upstreams (no secret: header names are not shown)."""
    named = _count(len(mcp.servers), "named server")
    if mcp.servers:
        named += f" ({', '.join(mcp.servers)})"
    allowed = [_count(len(mcp.allowed_urls), "URL prefix", "URL prefixes"),
               _count(len(mcp.allowed_hosts), "host")]  # fmt: skip
    urls = ", ".join(allowed) if mcp.allowed_urls or mcp.allowed_hosts else "none allowed"
    run_by = {"never": "never (respgate runs every mcp tool)",
              "responses": "responses (Responses-only routes: the upstream runs them)"}  # fmt: skip
    return f"{named}; client URLs: {urls}; passthrough: {run_by[mcp.passthrough]}"


def describe(config: Config, keys: ApiKeys) -> list[str]:
    """The effective configuration, one fact a line, secrets masked."""
    lines = [f"config: {config.path or '(none: environment defaults)'}", "providers:"]
    for p in config.providers.values():
        key = f"key from ${p.api_key_env}" if p.api_key else "no key"
        headers = f", headers {', '.join(p.headers)}" if p.headers else ""
        lines.append(f"  {p.name}: {p.kind} {redact(p.base_url)} ({key}{headers})")
    if not config.providers:
        lines.append("  (none)")
    lines.append("routes:")
    lines += [f"  {describe_route(r)}" for r in config.routes]
    lines.append("  echo -> built-in")
    lines.append(f"store: {describe_store(config)}")
    tenants = ", ".join(dict.fromkeys(k.tenant for k in config.keys))
    lines.append(f"keys: {'off (open)' if keys.open else f'{len(config.keys)} ({tenants})'}")
    origins = ", ".join(config.server.cors_origins) or "off"
    lines.append(f"cors: {origins}")
    lines.append(f"console: {'on (/console)' if config.console.enabled else 'off'}")
    lines.append(f"mcp: {describe_mcp(config.mcp)}")
    return lines


def config_check(args: argparse.Namespace) -> int:
    try:
        config, keys = load(args.file)
    except (ConfigError, KeyConfigError) as exc:
        print(f"respgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    print("\n".join(describe(config, keys)))
    return 0


def config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example())
    return 0


def edge_limits(config: Config) -> EdgeLimits:
    """`[server]` limits on client connections (see `server/edge.py`)."""
    server = config.server
    return EdgeLimits(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        header_timeout=server.header_timeout,
        body_timeout=server.body_timeout,
        max_connections=server.max_connections,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


GC_YOUNG_THRESHOLD = 7000  # allocations between collections of the youngest generation


def tune_gc() -> None:
    """What start-up made (modules, config, app, store) lives as long as the process: it
    is moved out of the collector's reach (`gc.freeze`), where every full collection
    walked all of it again. The youngest generation is collected every 7,000 net
    allocations instead of 700: with streams in flight most young objects are still
    alive, and each collection walked and promoted them, for nothing (the stream path
    makes no reference cycles). Together about 5-10% of a stream's CPU at c=16-64
    (docs/design.md, "Issue 11, fourth pass: garbage collection")."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class GracefulServer(uvicorn.Server):
    """Calls `on_started` (the start-up block) once the port is bound and the app started,
    after tuning the garbage collector for serving (`tune_gc`).

    On SIGTERM: `/readyz` answers 503 at once; after `drain_delay` seconds (still
    serving, so a load balancer can notice) it stops accepting, lets streams finish
    within the grace period, then ends the rest with `error` + `response.failed` +
    `[DONE]`. SIGINT (Ctrl-C), or a second signal, skips the delay."""

    def __init__(
        self,
        config: uvicorn.Config,
        engine: Engine,
        grace: float,
        *,
        drain_delay: float = 0.0,
        on_started: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self.engine = engine
        self.grace = grace
        self.drain_delay = drain_delay
        self.on_started = on_started
        self._stopping = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            tune_gc()
            self.on_started()

    def handle_exit(self, sig: int, frame: Any) -> None:
        loop = asyncio.get_event_loop()
        if not self.engine.draining and sig == signal.SIGTERM and self.drain_delay > 0:
            self.engine.draining = True
            log.warning("draining: /readyz answers 503; stopping in %gs", self.drain_delay)
            loop.call_soon_threadsafe(loop.call_later, self.drain_delay, self._stop, sig, frame)
            return
        self.engine.draining = True
        self._stop(sig, frame)

    def _stop(self, sig: int, frame: Any) -> None:
        if not self._stopping:
            self._stopping = True
            loop = asyncio.get_event_loop()
            loop.call_soon_threadsafe(lambda: loop.create_task(self.engine.shutdown(self.grace)))
        super().handle_exit(sig, frame)


class _QuietStartup(logging.Filter):
    """Drops uvicorn's own start-up lines: respgate prints one block once the port is bound."""

    LINES = ("Started server process", "Waiting for application startup", "Application startup")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.LINES)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (before anything starts); OSError when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def ollama_line(config: Config, environ: Mapping[str, str] = os.environ) -> str:
    if config.path is not None:
        return "ollama: not probed (providers from the config file)"
    if environ.get("RESPGATE_NO_OLLAMA_PROBE", "") not in ("", "0"):
        return "ollama: not probed (RESPGATE_NO_OLLAMA_PROBE)"
    if "ollama" in config.providers:
        models = sum(r.provider == "ollama" for r in config.routes)
        return f"ollama: detected at {OLLAMA_URL} ({models} models)"
    return f"ollama: not detected at {OLLAMA_URL}"


def banner(config: Config, keys: ApiKeys, url: str) -> list[str]:
    """The start-up block: version, address, store, keys, what is served, Ollama, MCP."""
    tenants = ", ".join(dict.fromkeys(k.tenant for k in config.keys))
    routes = ["echo (built-in)"] + [describe_route(r) for r in config.routes]
    return [
        f"respgate {__version__} listening on {url}",
        f"  config: {config.path or 'none (environment defaults)'}",
        f"  store: {describe_store(config)}",
        f"  keys: {'off (open)' if keys.open else f'on, {len(config.keys)} ({tenants})'}",
        f"  models: {'; '.join(routes)}",
        f"  {ollama_line(config)}",
        f"  console: {f'{url}/console' if config.console.enabled else 'off'}",
        f"  mcp: {describe_mcp(config.mcp)}",
        f"  health: {url}/healthz, {url}/readyz",
    ]


def has_process_limits(config: Config) -> bool:
    """Whether rate limits are configured and counted in each process (no Redis)."""
    quotas = [
        config.limits.requests_per_minute,
        config.limits.tokens_per_minute,
        config.limits.concurrent_streams,
    ]
    for key in config.keys:
        quotas += [key.requests_per_minute, key.tokens_per_minute, key.concurrent_streams]
    return not config.limits.redis_url and any(quotas)  # fmt: skip


def group_lines(config: Config, pids: list[int]) -> list[str]:
    """The start-up block's lines about a group of workers: pids, and what is per worker."""
    lines = [f"  workers: {len(pids)} (pids {', '.join(map(str, pids))})"]
    if has_process_limits(config):
        lines.append(
            f"  limits: counted in each worker: a key may use {len(pids)}x its limits "
            "(set [limits] redis_url to share them)"
        )
    return lines


def serve(args: argparse.Namespace) -> int:
    try:
        config, keys = load(args.config)
        traces = tracing(config.telemetry.otlp_endpoint, config.telemetry.service_name)
    except (ConfigError, KeyConfigError) as exc:
        print(f"respgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    allow_open = args.allow_open or config.server.allow_open
    if keys.open and not is_loopback(args.host) and not allow_open:
        print(
            f"respgate: refusing to serve {args.host} without API keys; configure [[keys]] "
            "or pass --allow-open to run open on purpose.",
            file=sys.stderr,
        )
        return 2
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"respgate: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    workers = args.workers or default_workers()
    group: int | None = None
    try:
        if workers > 1 and config.store.enabled:
            group = lock_group(store_location(config))
        problem = check_store(config, shared=group is not None)
    except StoreError as exc:
        problem = f"cannot open the store at {redact(store_location(config))}: {exc}"
    if problem:
        sock.close()
        print(f"respgate: {problem}", file=sys.stderr)
        return 2
    log_format = args.log_format or config.server.log_format
    # respgate's own lines (one per response at info) follow --log-level too
    logs.configure(log_format, logging.getLevelNamesMapping().get(args.log_level.upper(), 20))
    host = f"[{args.host}]" if ":" in args.host else args.host
    lines = banner(config, keys, f"http://{host}:{args.port}")
    quiet = args.log_level in ("error", "critical")

    def announce(extra: list[str]) -> None:
        if not quiet:
            print(logs.start_block(lines + extra, log_format), file=sys.stderr, flush=True)

    if workers == 1:
        return serve_worker(args, config, keys, sock, log_format, lambda: announce([]), traces)
    # a group: the workers' metrics are summed from files in one directory
    series = tempfile.mkdtemp(prefix="respgate-metrics-") if config.server.metrics else None

    def work(ready: Callable[[], None]) -> int:
        return serve_worker(
            args,
            config,
            keys,
            sock,
            log_format,
            ready,
            traces,
            shared=True,
            multiprocess_dir=series,
        )

    def gone(pid: int) -> None:
        if series is not None:
            forget_worker(series, pid)

    try:
        return Supervisor(
            workers,
            work,
            sock,
            on_ready=lambda pids: announce(group_lines(config, pids)),
            on_exit=gone,
        ).run()
    finally:
        if group is not None:
            os.close(group)
        if series is not None:
            shutil.rmtree(series, ignore_errors=True)


def serve_worker(
    args: argparse.Namespace,
    config: Config,
    keys: ApiKeys,
    sock: socket.socket,
    log_format: str,
    ready: Callable[[], None],
    traces: Callable[[], Observer] | None = None,
    *,
    shared: bool = False,
    multiprocess_dir: str | None = None,
) -> int:
    """One serving process (the only one, or a worker of a group): engine, app, uvicorn."""
    registry = ProviderRegistry(Router(config))
    metrics = (
        Metrics(registry.route_name, multiprocess_dir=multiprocess_dir)
        if config.server.metrics
        else None
    )
    tracer = traces() if traces is not None else None
    observers = [o for o in (metrics, logs.ResponseLog(), tracer) if o is not None]
    engine = build_engine(config, registry, metrics=metrics, observers=observers, shared=shared)
    uvicorn_config = server_config(
        create_app(
            engine,
            keys=keys,
            cors_origins=list(config.server.cors_origins),
            metrics=metrics,
            max_body_bytes=config.server.max_body_bytes,
            keepalive_seconds=config.server.keepalive_interval,
            console=config.console.enabled,
        ),
        limits=edge_limits(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # JSON lines: uvicorn's records go through respgate's handler (logs.configure)
        log_config=None if log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        # uvicorn builds each access line (URL quoting) before the logger filters it
        access_log=args.log_level in ("trace", "debug", "info"),
        timeout_graceful_shutdown=int(args.grace) + 5,
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietStartup())
    GracefulServer(
        uvicorn_config, engine, args.grace, drain_delay=args.drain_delay, on_started=ready
    ).run(sockets=[sock])
    return 0


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def log_level(text: str) -> str:
    """A log level in any case (`WARN` and `warn` are `warning`)."""
    name = {"warn": "warning", "fatal": "critical"}.get(text.lower(), text.lower())
    if name not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return name


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 1-65535")
    return port


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float) -> int:
    """`--since`: a duration back from now (`90m`, `24h`, `7d`) or a date/time (ISO 8601;
    UTC unless it names a zone). Unix seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return int(now - float(match[1]) * _UNIT[match[2]])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration (30m, 24h, 7d) or a date (2026-12-01)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


USAGE_COLUMNS = ("requests", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens")


def usage_table(rows: list[UsageTotal]) -> str:
    """Usage per tenant and model as an aligned text table with a total line."""
    head = ["tenant", "model", "requests", "input", "cached", "output", "reasoning", "cost_usd"]

    def cost(value: float | None) -> str:
        return "-" if value is None else f"{value:.6f}"

    lines = [
        [r.tenant or "(open)", r.model, *(str(getattr(r, c)) for c in USAGE_COLUMNS), cost(r.cost)]
        for r in rows
    ]
    costs = [r.cost for r in rows if r.cost is not None]
    total = ["total", "", *(str(sum(getattr(r, c) for r in rows)) for c in USAGE_COLUMNS)]
    lines.append([*total, cost(sum(costs) if costs else None)])
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in [head, *lines]
    )  # fmt: skip


def usage(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ, probe=None)
        since = (
            None if args.since is None else parse_since(args.since, dt.datetime.now().timestamp())
        )
    except (ConfigError, ValueError) as exc:
        print(f"respgate: {exc}", file=sys.stderr)
        return 2
    location = store_location(config)
    try:
        rows = asyncio.run(read_usage(location, since, args.tenant))
    except StoreError as exc:
        print(f"respgate: cannot read usage from {redact(location)}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            orjson.dumps(
                {
                    "since": since,
                    "tenant": args.tenant,
                    "usage": [dataclasses.asdict(r) for r in rows],
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        print(usage_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="respgate", description="A spec-exact Responses API gateway."
    )
    parser.add_argument("--version", action="version", version=f"respgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the gateway")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=port_number, default=8000, help="1-65535 (default 8000)")
    p_serve.add_argument("--config", default=None, help="TOML configuration file")
    p_serve.add_argument(
        "--grace", type=seconds, default=SHUTDOWN_GRACE_SECONDS, help="shutdown grace period (s)"
    )
    p_serve.add_argument(
        "--drain-delay",
        type=seconds,
        default=0.0,
        help="on SIGTERM, keep serving this long with /readyz answering 503 before stopping (s)",
    )
    p_serve.add_argument(
        "--log-level", type=log_level, default="info", help=", ".join(LOG_LEVELS) + " (any case)"
    )
    p_serve.add_argument(
        "--log-format", choices=logs.LOG_FORMATS, default=None,
        help="text (default) or json: one JSON object per line ([server] log_format)",
    )  # fmt: skip
    p_serve.add_argument(
        "--workers", type=count, default=os.environ.get("RESPGATE_WORKERS"),
        help="processes serving the port (default: $RESPGATE_WORKERS, else one per core, at "
        f"most {MAX_DEFAULT_WORKERS}; 1: a single process)",
    )  # fmt: skip
    p_serve.add_argument(
        "--allow-open", action="store_true", help="serve a non-loopback address without API keys"
    )
    p_serve.set_defaults(func=serve)
    p_config = sub.add_parser("config", help="check a configuration file or print an example")
    config_sub = p_config.add_subparsers(dest="config_command", required=True)
    p_check = config_sub.add_parser(
        "check", help="validate FILE and print the effective configuration (starts nothing)"
    )
    p_check.add_argument("file", nargs="?", help="TOML file (none: the environment defaults)")
    p_check.set_defaults(func=config_check)
    config_sub.add_parser("example", help="print a complete commented example").set_defaults(
        func=config_example
    )
    p_usage = sub.add_parser("usage", help="tokens and cost per tenant and model, from the store")
    p_usage.add_argument("--config", default=None, help="TOML configuration file (its [store])")
    p_usage.add_argument("--since", help="a duration back from now (24h, 7d) or a date (UTC)")
    p_usage.add_argument("--tenant", help="only this tenant")
    p_usage.add_argument("--json", action="store_true", help="JSON instead of a table")
    p_usage.set_defaults(func=usage)
    check.add_parser(sub)
    chat.add_parser(sub)
    args = parser.parse_args(argv)
    logs.configure("text")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `respgate check --json | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit cannot fail
        return 1


if __name__ == "__main__":
    sys.exit(main())
