"""The `respgate` command."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn

from . import chat, check
from .config import Config, ConfigError, load_config
from .engine import Engine
from .providers.registry import ProviderRegistry
from .providers.router import Router
from .server.app import create_app
from .server.edge import EdgeLimits, server_config
from .store import open_store
from .store.keys import ApiKeys, KeyConfigError

SHUTDOWN_GRACE_SECONDS = 10.0


DEFAULT_DATA_DIR = "data"
DEFAULT_RETENTION_DAYS = 30.0


def store_location(config: Config, environ: Mapping[str, str] = os.environ) -> str:
    """`RESPGATE_DATABASE_URL`, else `[store] database_url`, else the SQLite data directory
    (`RESPGATE_DATA_DIR`, else `[store] data_dir`, else `./data`)."""
    store = config.tables.get("store", {})
    return (
        environ.get("RESPGATE_DATABASE_URL")
        or store.get("database_url")
        or environ.get("RESPGATE_DATA_DIR")
        or store.get("data_dir")
        or DEFAULT_DATA_DIR
    )


def build_engine(config: Config) -> Engine:
    """The engine with every provider and store the configuration names."""
    store = config.tables.get("store", {})
    days = store.get("retention_days", DEFAULT_RETENTION_DAYS)
    retention = None if days is None or days < 0 else days * 86400
    location = store_location(config)

    async def opener() -> Any:
        return await open_store(location, retention=retention)

    registry = ProviderRegistry(Router(config))
    return Engine(registry, None if store.get("enabled") is False else opener)


def check_store(config: Config) -> str | None:
    """Open and close the configured store once before serving, so that a data directory
    in use or an unreachable database is one clear line at start-up, not a traceback."""
    if config.tables.get("store", {}).get("enabled") is False:
        return None
    location = store_location(config)

    async def probe() -> None:
        store = await open_store(location, recover=False)
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


def edge_limits(config: Config) -> EdgeLimits:
    """`[server]` limits on client connections (see `server/edge.py`)."""
    server = config.tables.get("server", {})
    defaults = EdgeLimits()
    return EdgeLimits(
        max_header_bytes=int(server.get("max_header_bytes", defaults.max_header_bytes)),
        max_headers=int(server.get("max_headers", defaults.max_headers)),
        header_timeout=float(server.get("header_timeout", defaults.header_timeout)),
        body_timeout=float(server.get("body_timeout", defaults.body_timeout)),
        max_connections=int(server.get("max_connections", defaults.max_connections)),
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GracefulServer(uvicorn.Server):
    """On SIGTERM/SIGINT: stop accepting, let streams finish within the grace
    period, then end the rest with `error` + `response.failed` + `[DONE]`."""

    def __init__(self, config: uvicorn.Config, engine: Engine, grace: float) -> None:
        super().__init__(config)
        self.engine = engine
        self.grace = grace
        self._draining = False

    def handle_exit(self, sig: int, frame: object) -> None:
        if not self._draining:
            self._draining = True
            loop = asyncio.get_event_loop()
            loop.call_soon_threadsafe(lambda: loop.create_task(self.engine.shutdown(self.grace)))
        super().handle_exit(sig, frame)  # type: ignore[arg-type]


def serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ)
        keys = ApiKeys.from_config(config.tables.get("keys", []))
    except (ConfigError, KeyConfigError) as exc:
        print(f"respgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    server = config.tables.get("server", {})
    allow_open = args.allow_open or server.get("allow_open", False)
    if keys.open and not is_loopback(args.host) and not allow_open:
        print(
            f"respgate: refusing to serve {args.host} without API keys; configure [[keys]] "
            "or pass --allow-open to run open on purpose.",
            file=sys.stderr,
        )
        return 2
    problem = check_store(config)
    if problem:
        print(f"respgate: {problem}", file=sys.stderr)
        return 2
    engine = build_engine(config)
    limits = edge_limits(config)
    config = server_config(
        create_app(engine, keys=keys, cors_origins=server.get("cors_origins")),
        host=args.host,
        port=args.port,
        limits=limits,
        log_level=args.log_level,
        # uvicorn builds each access line (URL quoting) before the logger filters it
        access_log=args.log_level.lower() in ("trace", "debug", "info"),
        timeout_graceful_shutdown=int(args.grace) + 5,
    )
    GracefulServer(config, engine, args.grace).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="respgate", description="A spec-exact Responses API gateway."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the gateway")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--config", default=None, help="TOML configuration file")
    p_serve.add_argument(
        "--grace", type=float, default=SHUTDOWN_GRACE_SECONDS, help="shutdown grace period (s)"
    )
    p_serve.add_argument("--log-level", default="info")
    p_serve.add_argument(
        "--allow-open", action="store_true", help="serve a non-loopback address without API keys"
    )
    p_serve.set_defaults(func=serve)
    check.add_parser(sub)
    chat.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
