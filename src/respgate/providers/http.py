"""What every HTTP upstream dialect shares: the pooled client, the two-phase
open, status mapping before the first byte, and faults after it.

A dialect module subclasses `HttpProvider` and supplies four things: the
endpoint path, its auth headers, the request body (`request_body`, which may
append to `warnings`) and a sans-IO `Translator` (SSE events in, signals
out). The sockets themselves are `wire.py`'s (asyncio + httptools).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, ClassVar, Protocol

import orjson

from ..config import ProviderConfig
from ..deadlines import Deadlines, Entry
from ..protocol.signals import Failure, Finish, Signal, Usage
from ..sse import SSEDecoder
from .base import ModelCall, UpstreamError, upstream_error
from .wire import Response, Timeouts, UpstreamClient

ERROR_BODY_LIMIT = 64 * 1024
_ENDS = (Finish, Failure)  # a tuple: `Finish | Failure` would build a union per signal


# ---------------------------------------------------------------- errors


def error_message(body: bytes) -> str:
    """The upstream's own error message, from any of the usual error shapes."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:500]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:500]
        if isinstance(err, str):
            return err[:500]
        if isinstance(data.get("detail"), str):
            return data["detail"][:500]
    return body.decode("utf-8", "replace").strip()[:500]


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def status_error(
    config: ProviderConfig, status: int, body: bytes, headers: Mapping[str, str]
) -> UpstreamError:
    """Map an upstream HTTP error status to the error respgate answers with."""
    name = config.name
    detail = redact(error_message(body), config.api_key)
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        return upstream_error(
            502,
            f"The upstream rejected the gateway's credentials for provider {name} (HTTP {status}).",
            code="upstream_auth_error",
        )
    if status == 404:
        return upstream_error(
            404,
            f"Provider {name} does not know this model (HTTP 404){said}",
            code="model_not_found",
        )
    if status == 429:
        retry_after = headers.get("retry-after")
        return upstream_error(
            429,
            f"Provider {name} is rate limiting the gateway{said}",
            code="rate_limit_exceeded",
            retryable=True,
            headers={"retry-after": retry_after} if retry_after else {},
        )
    if status == 408:
        return upstream_error(
            504,
            f"Provider {name} timed out (HTTP 408){said}",
            code="upstream_timeout",
            retryable=True,
        )
    if status in (400, 413, 422):
        return upstream_error(
            400,
            f"Provider {name} rejected the request (HTTP {status}){said}",
            code="upstream_bad_request",
        )
    return upstream_error(
        502,
        f"Provider {name} failed (HTTP {status}){said}",
        code="upstream_error",
        retryable=status >= 500,
    )


# ---------------------------------------------------------------- streams


class Translator(Protocol):
    """Sans-IO: one upstream SSE event in, signals out."""

    def feed(self, event: str, data: str) -> list[Signal]: ...

    def end(self) -> list[Signal]:
        """The stream hit EOF: a `Finish` if the upstream had finished, else a `Failure`."""
        ...


class SignalStream:
    """The async iterator of signals `HttpProvider.open` returns.

    Faults while reading become one `Failure` (idle timeout, dropped
    connection, malformed or truncated stream); it stops after the first
    `Finish` or `Failure`. Idle limits: until the first token (any signal but
    `Usage`) the upstream may be silent for `read_timeout` (the socket
    read timeout: models think silently); after it, for `stream_idle_timeout`
    (a watchdog that closes the connection; one clock read per chunk).
    `aclose()` closes the upstream connection at once unless the stream ended
    normally, in which case the connection goes back to the pool. `warnings` are the request-translation warnings (dropped
    tools, ...), for a response header.

    `batches()` yields the same signals a socket read at a time (each list holds
    what one read of the upstream completed): the run builds and sends them together
    (`engine.Run`), where iterating yields them one by one (the tool loop, compaction).
    The read that carries the first token is the exception: it is yielded in two
    lists, up to the first token and the rest, with a turn of the event loop between,
    so that the first token is sent before the rest of its read is handled.
    """

    def __init__(
        self,
        response: Response,
        translator: Translator,
        *,
        client: UpstreamClient,
        provider: str,
        read_timeout: float | None,
        warnings: list[str],
        stream_idle_timeout: float | None = None,
    ) -> None:
        self.provider = provider
        self.warnings = warnings
        self._response = response
        self._translator = translator
        self._client = client
        self._read_timeout = read_timeout
        self._idle_timeout = stream_idle_timeout
        self._last_read = 0.0
        self._watchdog: Entry | None = None
        self._started = False  # a token arrived
        self._stalled = False  # the watchdog closed the connection
        self._ended = False
        self._closed = False
        self._gen = self._run()
        self._each: AsyncGenerator[Signal, None] | None = None  # iterated one by one (`__anext__`)

    def batches(self) -> AsyncIterator[list[Signal]]:
        """The signals of each upstream read, together (never an empty list)."""
        return self._gen

    def __aiter__(self) -> SignalStream:
        return self

    def __anext__(self) -> Any:
        if self._each is None:
            self._each = self._one_by_one()
        return self._each.__anext__()

    async def _one_by_one(self) -> AsyncIterator[Signal]:
        async for batch in self._gen:
            for signal in batch:
                yield signal

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._each is not None:
            await self._each.aclose()
        await self._gen.aclose()
        if self._ended:
            self._client.release_later(self._response)
        else:
            self._response.close()

    async def _run(self) -> AsyncIterator[list[Signal]]:
        translator, decoder = self._translator, SSEDecoder()
        clock = asyncio.get_running_loop().time
        try:
            read = self._response.read
            while chunk := await read():
                self._last_read = clock()
                batch: list[Signal] = []
                events = decoder.feed(chunk)
                for at, event in enumerate(events, 1):
                    waiting = not self._started
                    for signal in translator.feed(event.event, event.data):
                        if not self._started and not isinstance(signal, Usage):
                            self._started = True  # the first token: the idle limit starts
                            if self._idle_timeout:
                                self._watch()
                        batch.append(signal)
                        if isinstance(signal, _ENDS):
                            self._ended = isinstance(signal, Finish)
                            yield batch
                            return
                    if waiting and self._started and at < len(events):
                        # The read that holds the first token is split after it, with a
                        # turn of the loop between: the first token goes out while the
                        # rest of the read waits, not after it is translated and built.
                        yield batch
                        batch = []
                        await asyncio.sleep(0)
                if batch:
                    yield batch
            tail = translator.end()
        except TimeoutError:
            if self._response.overdue:
                message = f"Provider {self.provider} did not finish within its total timeout."
            else:
                message = self._timeout_message(self._read_timeout)
            tail = [Failure("upstream_timeout", message)]
        except OSError as exc:
            tail = [
                Failure(
                    "upstream_disconnected",
                    f"The connection to provider {self.provider} broke mid-stream ({type(exc).__name__}).",
                )
            ]
        finally:
            if self._watchdog is not None:
                Deadlines.for_loop(asyncio.get_running_loop()).cancel(self._watchdog)
        if self._stalled:
            tail = [Failure("upstream_timeout", self._timeout_message(self._idle_timeout))]
        if tail:
            self._ended = isinstance(tail[-1], Finish)
            yield tail

    def _watch(self) -> None:
        """Close the connection once the upstream is silent for `stream_idle_timeout`
        (re-armed lazily: a chunk only records the time it arrived)."""
        loop = asyncio.get_running_loop()
        due = self._last_read + (self._idle_timeout or 0.0)
        if loop.time() < due:  # on the loop's shared heap: no loop timer per stream
            self._watchdog = Deadlines.for_loop(loop).call_at(due, SignalStream._watch, self)
        else:
            self._stalled = True
            self._response.close()  # the pending read ends; `_run` reports the timeout

    def _timeout_message(self, seconds: float | None) -> str:
        return f"Provider {self.provider} sent nothing for {seconds:g} seconds mid-stream."


# ---------------------------------------------------------------- providers


class HttpProvider:
    """Base of the HTTP dialects; see the module docstring."""

    kind: ClassVar[str]
    path: ClassVar[str]

    def __init__(self, config: ProviderConfig, client: UpstreamClient) -> None:
        self.config = config
        self.name = config.name
        self.client = client
        self._timeouts = Timeouts(
            connect=config.connect_timeout, read=config.read_timeout, total=config.timeout
        )

    # -- what a dialect supplies

    def auth_headers(self) -> dict[str, str]:
        """`Authorization: Bearer <key>` (the OpenAI-style dialects); Anthropic overrides it."""
        return {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def request_body(self, call: ModelCall, warnings: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def translator(self, call: ModelCall) -> Translator:
        raise NotImplementedError

    # -- the two phases

    def headers(self, call: ModelCall) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        headers.update(call.headers)
        headers.update(self.auth_headers())
        headers.update(self.config.headers)  # the operator's word is last
        return headers

    async def open(self, call: ModelCall) -> SignalStream:
        warnings: list[str] = []
        body = orjson.dumps(self.request_body(call, warnings))
        url = self.config.base_url + self.path
        try:
            response = await self.client.post(url, body, self.headers(call), self._timeouts)
        except TimeoutError:
            raise upstream_error(
                504,
                f"Provider {self.name} did not answer in time.",
                code="upstream_timeout",
                retryable=True,
            ) from None
        except OSError as exc:
            raise upstream_error(
                502,
                f"Cannot reach provider {self.name} ({type(exc).__name__}).",
                code="upstream_connect_error",
                retryable=True,
            ) from None
        if response.status >= 400:
            raise await self._error_of(response)
        return SignalStream(
            response,
            self.translator(call),
            client=self.client,
            provider=self.name,
            read_timeout=self.config.read_timeout,
            warnings=warnings,
            stream_idle_timeout=self.config.stream_idle_timeout,
        )

    async def _error_of(self, response: Response) -> UpstreamError:
        body = b""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(self.config.connect_timeout):
                body = await response.read_body(ERROR_BODY_LIMIT)
        response.close()
        return status_error(self.config, response.status, body, response.headers)

    async def aclose(self) -> None:
        """The shared client belongs to the router; nothing of our own to close."""
