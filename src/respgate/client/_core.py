"""Everything below the I/O line, shared by the sync and async clients.

The clients only move bytes: they build the request with `build_request`, hand
the reply's status and headers to `rejects`, its body chunks to
`StreamState.feed`, and the end of the body to `StreamState.finish`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from ..sse import SSEDecoder
from . import events as ev
from .accumulate import Accumulator, Result
from .errors import ResponseFailedError, ResponsesError, StatusError, StreamError, error_fields

Json = dict[str, Any]
OnEvent = Callable[[ev.Event], None]

USER_AGENT = "respgate-client/0.1"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def build_request(
    base_url: str, api_key: str | None, headers: dict[str, str], body: Json, *, stream: bool
) -> httpx.Request:
    """`POST {base_url}/responses` with the JSON body (and `stream` set)."""
    all_headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "user-agent": USER_AGENT,
    }
    if api_key:
        all_headers["authorization"] = f"Bearer {api_key}"
    all_headers.update(headers)
    content = orjson.dumps({**body, "stream": stream})
    return httpx.Request(
        "POST", base_url.rstrip("/") + "/responses", headers=all_headers, content=content
    )


def rejects(reply: httpx.Response, *, stream: bool) -> bool:
    """True if the reply is not what was asked for; read its body and call `reply_error`."""
    if not reply.is_success:
        return True
    return stream and not _is_event_stream(reply)


def reply_error(reply: httpx.Response, body: bytes) -> ResponsesError:
    """The error for a reply that `rejects`: its status, or its error body, or its content type."""
    fields = error_fields(body)
    if not reply.is_success:
        fields.setdefault("message", f"HTTP {reply.status_code}")
        return StatusError(reply.status_code, body, **fields)
    if "type" in fields:  # an OpenAI error object sent with HTTP 200 and no stream
        return ResponseFailedError(**fields)
    content_type = reply.headers.get("content-type", "")
    return StreamError(
        f"expected text/event-stream, got {content_type or 'no content type'}",
        type="stream_error",
        code="unexpected_content_type",
    )


def transport_error(exc: httpx.HTTPError, response: Json | None = None) -> StreamError:
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "transport_error"
    return StreamError(
        f"{type(exc).__name__}: {exc}", type="stream_error", code=code, response=response
    )


def result_of(reply: httpx.Response) -> Result:
    """The Result of a (read) non-streaming reply; a `failed` response raises `ResponseFailedError`."""
    if rejects(reply, stream=False):
        raise reply_error(reply, reply.content)
    try:
        response = orjson.loads(reply.content)
    except orjson.JSONDecodeError:
        response = None
    if not isinstance(response, dict):
        raise StreamError(
            "the reply body is not a Response object", type="stream_error", code="invalid_body"
        )
    if response.get("status") == "failed":
        raise _failed(None, response)
    return Result(response)


def _is_event_stream(reply: httpx.Response) -> bool:
    content_type = reply.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def _failed(error: ev.ErrorEvent | None, response: Json | None) -> ResponseFailedError:
    """The exception for an `error` event and/or a failed Response snapshot: each field
    from the flat event, else its nested `error`, else the snapshot's `error`."""
    sources: list[Json] = []
    if error is not None:
        sources.append({"code": error.code, "message": error.message, "param": error.param})
        sources.append(error.error or {})
    detail = (response or {}).get("error")
    sources.append(detail if isinstance(detail, dict) else {})

    def pick(key: str) -> Any:
        return next((s[key] for s in sources if s.get(key) is not None), None)

    return ResponseFailedError(
        str(pick("message") or "the response failed"),
        type=pick("type") or "response_failed",
        code=pick("code"),
        param=pick("param"),
        response=response,
    )


class StreamState:
    """One streamed response, sans-IO: bytes in, typed events out, then a Result or an error.

    `feed(chunk)` decodes SSE, types each event, adds it to the accumulator, calls
    `on_event`, and returns the events. `done` turns true at `data: [DONE]`, after
    which nothing more needs reading. `finish()` returns the Result, or raises
    `ResponseFailedError` (an `error` event or `response.failed`) or `StreamError`
    (no terminal event).
    """

    def __init__(self, on_event: OnEvent | None = None) -> None:
        self.decoder = SSEDecoder()
        self.accumulator = Accumulator()
        self.done = False
        self.result: Result | None = None
        self._on_event = on_event

    def feed(self, chunk: bytes) -> list[ev.Event]:
        out: list[ev.Event] = []
        for sse in self.decoder.feed(chunk):
            if sse.data == "[DONE]":
                self.done = True
                break
            event = ev.decode_event(sse.data)
            self.accumulator.add(event)
            if self._on_event is not None:
                self._on_event(event)
            out.append(event)
        return out

    def finish(self) -> Result:
        self.decoder.close()
        acc = self.accumulator
        terminal = acc.terminal
        if acc.error is not None or isinstance(terminal, ev.ResponseFailed):
            raise _failed(acc.error, terminal.response if terminal is not None else acc.rebuilt())
        if terminal is None:
            truncated = " (the last event was cut off)" if self.decoder.incomplete else ""
            raise StreamError(
                f"the stream ended without response.completed, response.incomplete or response.failed{truncated}",
                type="stream_error",
                code="no_terminal_event",
                response=acc.rebuilt(),
            )
        self.result = acc.result()
        return self.result

    def broken(self, exc: httpx.HTTPError) -> StreamError:
        """The error for a transport failure mid-stream, with the partial Response."""
        self.decoder.close()
        return transport_error(exc, self.accumulator.rebuilt())
