"""The `Failure` signals every translator emits for a broken upstream stream,
worded once."""

from __future__ import annotations

from typing import Any

import orjson

from ..protocol.signals import Failure


def truncated(provider: str, before: str) -> Failure:
    """The stream hit EOF before `before` (the dialect's end marker)."""
    return Failure("upstream_truncated", f"Provider {provider}'s stream ended before {before}.")


def failed(provider: str, kind: str | None, message: str | None) -> Failure:
    """An error the upstream reported in band, after HTTP 200."""
    detail = f" ({kind})" if kind else ""
    return Failure(
        "upstream_error",
        f"Provider {provider} failed mid-stream{detail}: {message or 'unknown error'}",
    )


def decode(provider: str, data: str) -> dict[str, Any] | Failure:
    """One event's JSON object, or the `Failure` for a malformed one."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Failure(
            "upstream_protocol_error", f"Provider {provider} sent a malformed event: {data[:200]!r}"
        )
    if not isinstance(value, dict):
        return Failure(
            "upstream_protocol_error",
            f"Provider {provider} sent a non-object event: {data[:200]!r}",
        )
    return value
