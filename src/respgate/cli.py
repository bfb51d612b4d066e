"""The `respgate` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from . import chat, check
from .config import ConfigError, load_config
from .engine import Engine
from .providers.registry import ProviderRegistry
from .providers.router import Router
from .server.app import create_app

SHUTDOWN_GRACE_SECONDS = 10.0


def build_engine(config_path: str | None) -> Engine:
    """The engine with every provider and store the configuration names."""
    config = load_config(config_path, os.environ)
    return Engine(ProviderRegistry(Router(config)))


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
        engine = build_engine(args.config)
    except ConfigError as exc:
        print(f"respgate: invalid configuration: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(engine),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
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
