"""What the client commands (`respgate chat`, `respgate check`) check about the
endpoint they are given before sending anything, so that a typo or a server that
is not running is one line and exit code 2, not a traceback or a page of failures."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import httpx

KEY_VARIABLES = ("RESPGATE_API_KEY", "OPENAI_API_KEY")


def api_key(given: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """`--key`, else `RESPGATE_API_KEY`, else `OPENAI_API_KEY`."""
    return given or next((environ[v] for v in KEY_VARIABLES if environ.get(v)), None)


def endpoint_problem(url: str, timeout: float = 5.0) -> str | None:
    """Why `url` cannot be a Responses API base URL or cannot be reached (a TCP
    connection to its host and port), or None."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"{url!r} is not a valid URL ({exc})"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"{url!r} is not an http:// or https:// URL"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.host, port), timeout=timeout):
            return None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"cannot reach {url} ({reason})"
