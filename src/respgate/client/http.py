"""The I/O line: `Client`/`Stream` and their async twins `AsyncClient`/`AsyncStream`.

They only send the request and move body bytes into `StreamState`; all
decoding, typing, accumulation and error mapping lives in `_core`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from . import events as ev
from ._core import (
    DEFAULT_TIMEOUT,
    OnEvent,
    StreamState,
    build_request,
    rejects,
    reply_error,
    result_of,
    transport_error,
)
from .accumulate import Result


class _Config:
    """What both clients hold: where to send, how to authenticate, how long to wait."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        headers: dict[str, str] | None,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.headers = dict(headers or {})

    def request(self, body: dict[str, Any], *, stream: bool) -> httpx.Request:
        return build_request(self.base_url, self.api_key, self.headers, body, stream=stream)


class _StreamBase:
    """What both streams hold: the request, the state below the I/O line, the reply."""

    def __init__(self, request: httpx.Request, on_event: OnEvent | None) -> None:
        self.request = request
        self.state = StreamState(on_event)
        self.response: httpx.Response | None = None

    @property
    def result(self) -> Result | None:
        """The Result once the stream has ended well (None before)."""
        return self.state.result


class Stream(_StreamBase):
    """One streamed response. Iterate for typed events as they arrive; `final()` for
    the Result. Use as a context manager (or iterate to the end) to release the connection."""

    def __init__(
        self, http: httpx.Client, request: httpx.Request, on_event: OnEvent | None
    ) -> None:
        super().__init__(request, on_event)
        self._http = http

    def __enter__(self) -> Stream:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> httpx.Response:
        if self.response is None:
            try:
                self.response = self._http.send(self.request, stream=True)
            except httpx.HTTPError as exc:
                raise transport_error(exc) from exc
            if rejects(self.response, stream=True):
                raise reply_error(self.response, self.response.read())
        return self.response

    def __iter__(self) -> Iterator[ev.Event]:
        if self.state.result is not None:
            return
        response = self._open()
        try:
            for chunk in response.iter_bytes():
                yield from self.state.feed(chunk)
                if self.state.done:
                    break
        except httpx.HTTPError as exc:
            raise self.state.broken(exc) from exc
        finally:
            self.close()
        self.state.finish()

    def final(self) -> Result:
        """Read the rest of the stream (calling `on_event`) and return the Result."""
        for _ in self:
            pass
        assert self.state.result is not None
        return self.state.result

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


class AsyncStream(_StreamBase):
    """The async twin of `Stream`: `async with`, `async for`, `await final()`."""

    def __init__(
        self, http: httpx.AsyncClient, request: httpx.Request, on_event: OnEvent | None
    ) -> None:
        super().__init__(request, on_event)
        self._http = http

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _open(self) -> httpx.Response:
        if self.response is None:
            try:
                self.response = await self._http.send(self.request, stream=True)
            except httpx.HTTPError as exc:
                raise transport_error(exc) from exc
            if rejects(self.response, stream=True):
                raise reply_error(self.response, await self.response.aread())
        return self.response

    async def __aiter__(self) -> AsyncIterator[ev.Event]:
        if self.state.result is not None:
            return
        response = await self._open()
        try:
            async for chunk in response.aiter_bytes():
                for event in self.state.feed(chunk):
                    yield event
                if self.state.done:
                    break
        except httpx.HTTPError as exc:
            raise self.state.broken(exc) from exc
        finally:
            await self.aclose()
        self.state.finish()

    async def final(self) -> Result:
        """Read the rest of the stream (calling `on_event`) and return the Result."""
        async for _ in self:
            pass
        assert self.state.result is not None
        return self.state.result

    async def aclose(self) -> None:
        if self.response is not None:
            await self.response.aclose()


class Client(_Config):
    """A Responses API client: `stream(...)` for events, `create(...)` for one reply.

    `base_url` ends before `/responses` (e.g. `http://127.0.0.1:8000/v1`). Extra
    `headers` go on every request; `timeout` is httpx's (the read timeout applies
    between body chunks, so keep-alive comments keep a stream alive). Pass
    `http_client` to reuse your own `httpx.Client`.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, headers)
        self.http = http_client or httpx.Client(timeout=timeout)

    def stream(self, *, on_event: OnEvent | None = None, **body: Any) -> Stream:
        """`POST /responses` with `stream: true`; the body is the keyword arguments."""
        return Stream(self.http, self.request(body, stream=True), on_event)

    def create(self, **body: Any) -> Result:
        """`POST /responses` without streaming; the Result of the JSON reply."""
        try:
            reply = self.http.send(self.request(body, stream=False))
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        return result_of(reply)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Config):
    """The async twin of `Client`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, headers)
        self.http = http_client or httpx.AsyncClient(timeout=timeout)

    def stream(self, *, on_event: OnEvent | None = None, **body: Any) -> AsyncStream:
        """`POST /responses` with `stream: true`; the body is the keyword arguments."""
        return AsyncStream(self.http, self.request(body, stream=True), on_event)

    async def create(self, **body: Any) -> Result:
        """`POST /responses` without streaming; the Result of the JSON reply."""
        try:
            reply = await self.http.send(self.request(body, stream=False))
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        return result_of(reply)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
