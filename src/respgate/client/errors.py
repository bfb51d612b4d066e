"""One exception hierarchy for everything that can go wrong with a response.

Every error carries the OpenAI error fields `type`, `code`, `message`, `param`
and the `response` as far as it got (the failed snapshot, or the Response
rebuilt from the events received before the stream broke; None before any).
"""

from __future__ import annotations

from typing import Any

import orjson

Json = dict[str, Any]


class ResponsesError(Exception):
    """Base class: the request did not produce a completed or incomplete response."""

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        response: Json | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.response = response

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        label = ", ".join(x for x in (self.type, self.code) if x)
        return f"{label}: {self.message}{where}" if label else f"{self.message}{where}"


class StatusError(ResponsesError):
    """The server answered with a non-2xx HTTP status (an error body, no stream)."""

    def __init__(self, status_code: int, body: bytes, **fields: Any) -> None:
        super().__init__(**fields)
        self.status_code = status_code
        self.body = body


class ResponseFailedError(ResponsesError):
    """The server reported a failure: an in-stream `error` event and/or `response.failed`,
    a non-streaming response with status `failed`, or an error object with HTTP 200."""


class StreamError(ResponsesError):
    """The reply is unusable: a transport error or timeout, a stream that is not
    `text/event-stream` or ends without a terminal event, a body that is not a
    Response. `code` says which: `transport_error`, `timeout`,
    `unexpected_content_type`, `no_terminal_event`, `invalid_body`."""


def error_fields(body: bytes) -> dict[str, Any]:
    """`message`/`type`/`code`/`param` from an OpenAI error body
    (`{"error": {...}}`, or the flat `{"message": ...}` some servers send)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        obj = obj["error"]
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        text = body.decode("utf-8", "replace").strip()
        return {"message": text or "no error message"}
    return {
        "message": obj["message"],
        "type": _str(obj.get("type")),
        "code": _str(obj.get("code")),
        "param": _str(obj.get("param")),
    }


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
