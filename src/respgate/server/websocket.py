"""WebSocket mode on `/v1/responses` (Open Responses 2026-04-24): a thin transport.

The client sends `{"type": "response.create", ...create body}` text frames; each one
is a turn, processed one at a time, whose events are the SSE events as JSON text
frames (no `event:` line, no `[DONE]`). Rules (README "WebSocket mode"):

- exactly one terminal message per turn: a turn that fails before its first event
  sends only an error envelope `{"type": "error", "status", "error": {type, code,
  message, param}}`; a run that fails mid-stream ends with `response.failed` alone
  (the builder's `error` event is left out and the numbers after it close the gap,
  so `sequence_number` still counts up by one from 0);
- connection-local cache: the connection's latest response (its whole context plus
  its output), so `previous_response_id` continues it even with `store: false`; no
  other connection sees it. Not cached: `store: true` loads the chain from the store,
  `store: false` fails with `previous_response_not_found`. A continuation turn that
  fails (envelope or `response.failed`) evicts its `previous_response_id`;
- a `function_call_output` whose `call_id` matches no `function_call` of the
  context fails the turn (400, `function_call_not_found`);
- the connection lives `max_seconds` (60 minutes): then a turn in flight ends
  `response.failed`, an envelope with code `websocket_connection_limit_reached`
  follows, and the server closes the socket;
- a client disconnect aborts the run in flight, as on SSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from ..engine import Engine, Run
from ..protocol.errors import (
    ApiError,
    invalid,
    invalid_api_key,
    previous_response_not_found,
    quote,
)
from ..protocol.lifecycle import TERMINAL_EVENTS, ReasoningEvents
from ..protocol.request import CreateRequest, decode_json, parse_create_request
from ..store.keys import ApiKey, ApiKeys
from .transport import Gauge, echoed_headers, reasoning_events_of

log = logging.getLogger("respgate.server.websocket")

Event = dict[str, Any]

CONNECTION_LIMIT_SECONDS = 3600.0
# Messages read ahead while a turn runs (they wait their turn; reading stops beyond).
INBOX_SIZE = 16
# HTTP/SSE transport fields a WebSocket `response.create` must not carry (a WebSocket turn
# always streams, and a background response cannot be streamed on a socket).
TRANSPORT_FIELDS = ("stream_options", "background")
# Output-item types and the call types their `call_id` must match.
CALL_OF = {"function_call_output": "function_call", "custom_tool_call_output": "custom_tool_call"}

Gone = (WebSocketDisconnect, WebSocketDisconnected)


def envelope(err: ApiError) -> Event:
    """The WebSocket error envelope (`WebSocketErrorEvent`): `error.code` is always a string."""
    return {
        "type": "error",
        "status": err.status,
        "error": {
            "type": err.type,
            "code": err.code or ("server_error" if err.status >= 500 else "invalid_request"),
            "message": err.message,
            "param": err.param,
        },
    }


def previous_id_of(frame: str | bytes) -> str | None:
    """The `previous_response_id` of a message, read before it is validated (so that a
    continuation turn that fails validation still evicts it)."""
    try:
        raw = msgspec.json.decode(frame)
    except (msgspec.DecodeError, RecursionError):
        return None
    value = raw.get("previous_response_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def parse_message(frame: str | bytes) -> CreateRequest:
    """A `response.create` message as a validated `CreateRequest` (400 with `param` otherwise)."""
    raw = decode_json(frame.encode() if isinstance(frame, str) else frame)
    if not isinstance(raw, dict):
        raise invalid("A WebSocket message must be a JSON object.", code="invalid_json")
    kind = raw.pop("type", None)
    if kind != "response.create":
        raise invalid(
            f"Unsupported message type {quote(kind)}; send `response.create`.",
            "type",
            "invalid_value",
        )
    # `stream: true` is accepted and ignored (Codex sends it in every message); `false` is
    # refused: a turn's events are always sent.
    if raw.get("stream", True) is not True:
        raise invalid(
            "A WebSocket turn always streams; send `stream: true` or leave it out.",
            "stream",
            code="unsupported_parameter",
        )
    raw.pop("stream", None)
    for name in TRANSPORT_FIELDS:
        if name in raw:
            raise invalid(
                f"`{name}` is an HTTP/SSE field and must not be sent over WebSocket.",
                name,
                code="unsupported_parameter",
            )
    return parse_create_request(orjson.dumps(raw))


def check_call_outputs(context: list[Event], items: list[Event]) -> None:
    """Every tool output of this turn's input answers a call of the context."""
    calls = {(i["type"], i.get("call_id")) for i in context if i["type"] in CALL_OF.values()}
    for index, item in enumerate(items):
        call_type = CALL_OF.get(item["type"])
        call_id = item.get("call_id")
        if call_type is not None and call_id is not None and (call_type, call_id) not in calls:
            raise invalid(
                f"No {call_type} found for {item['type']} with call_id {quote(call_id)}.",
                f"input[{index}].call_id",
                code="function_call_not_found",
            )


class Connection:
    """One WebSocket: a reader task queues the frames, `serve()` runs them one at a time."""

    def __init__(
        self,
        websocket: WebSocket,
        engine: Engine,
        key: ApiKey,
        max_seconds: float,
        streams: Gauge | None = None,
        reasoning_events: ReasoningEvents | None = None,
    ) -> None:
        self.ws = websocket
        self.reasoning_events = reasoning_events  # from the upgrade request's header
        self.streams = streams or Gauge()  # counts this connection's turn while it streams
        self.engine = engine
        self.key = key
        self.tenant = key.tenant
        self.max_seconds = max_seconds
        # The latest response of this connection: (id, its context + its output).
        self.cache: tuple[str, list[Event]] | None = None
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue(INBOX_SIZE)
        self.run: Run | None = None
        self._dropped = 0  # events of the current turn left out (the builder's `error`)

    async def serve(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            try:
                async with asyncio.timeout(self.max_seconds):
                    while (frame := await self.inbox.get()) is not None:
                        await self._turn(frame)
            except TimeoutError:
                await self._limit_reached()
        except Gone:
            pass
        finally:
            if self.run is not None:
                self.run.abort("client_disconnected", "The client disconnected.")
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                if self.run is not None:
                    self.run.abort("client_disconnected", "The client disconnected.")
                await self.inbox.put(None)
                return
            frame = message.get("text")
            await self.inbox.put(frame if frame is not None else message.get("bytes", b""))

    async def _send(self, event: Event) -> None:
        await self.ws.send_text(orjson.dumps(event).decode())

    def _cached(self, response_id: str | None) -> list[Event] | None:
        if self.cache is not None and self.cache[0] == response_id:
            return self.cache[1]
        return None

    def _evict(self, response_id: str | None) -> None:
        if response_id is not None and self._cached(response_id) is not None:
            self.cache = None

    async def _turn(self, frame: str | bytes) -> None:
        previous = previous_id_of(frame)
        try:
            req = parse_message(frame)
            chain = self._cached(req.previous_response_id)
            if chain is None and req.previous_response_id is not None and req.store is False:
                raise previous_response_not_found(req.previous_response_id)
            context = await self.engine.context(req, self.tenant, chain=chain)
            check_call_outputs(context, req.items)
            self.run = await self.engine.create(
                req,
                tenant=self.tenant,
                key=self.key,
                context=context,
                transport="websocket",
                request_id=getattr(self.ws.state, "request_id", None),
                reasoning_events=self.reasoning_events,
            )
        except ApiError as err:
            self._evict(previous)
            await self._send(envelope(err))
            return
        self._dropped = 0
        run = self.run
        await self._stream(run)
        self.run = None
        if run.response["status"] == "failed":
            self._evict(previous)
        else:
            self.cache = (run.response_id, [*run.context, *run.builder.stored()["output"]])

    async def _stream(self, run: Run) -> None:
        """Send the run's events until its terminal one (a cancelled send aborts the run)."""
        with self.streams:
            await self._send_events(run)

    async def _send_events(self, run: Run) -> None:
        try:
            while batch := await run.next_batch():
                for event in batch:
                    if event["type"] == "error":  # response.failed follows and ends the turn
                        self._dropped += 1
                        continue
                    if self._dropped:
                        event = {
                            **event,
                            "sequence_number": event["sequence_number"] - self._dropped,
                        }
                    run.client_first_byte()
                    await self._send(event)
                    if event["type"] in TERMINAL_EVENTS:
                        return
        except asyncio.CancelledError:
            run.abort(
                "websocket_connection_limit_reached",
                "The WebSocket connection reached its time limit; open a new connection.",
            )
            raise
        finally:
            run.release()

    async def _limit_reached(self) -> None:
        run, self.run = self.run, None
        if run is not None:  # cut short above: send the rest of its events
            await self._stream(run)
        err = ApiError(
            400,
            f"The WebSocket connection reached its limit of {self.max_seconds:g} seconds; "
            "open a new connection.",
            code="websocket_connection_limit_reached",
        )
        await self._send(envelope(err))
        await self.ws.close(1000, "connection limit reached")


def websocket_endpoint(
    engine: Engine,
    keys: ApiKeys,
    *,
    max_seconds: float = CONNECTION_LIMIT_SECONDS,
    streams: Gauge | None = None,
) -> Any:
    """The ASGI WebSocket endpoint for `/v1/responses`. Auth is checked on the upgrade
    request (`Authorization: Bearer`); refused: a 401 envelope, then close code 1008."""

    async def endpoint(websocket: WebSocket) -> None:
        key = keys.lookup(websocket.headers.get("authorization"))
        echoed = echoed_headers(websocket.headers)
        await websocket.accept(headers=[(k.encode(), v.encode()) for k, v in echoed.items()])
        refused: tuple[ApiError, str] | None = None
        try:
            reasoning_events = reasoning_events_of(websocket.headers)
        except ApiError as err:
            refused = (err, "invalid header")
        if key is None:
            refused = (invalid_api_key(), "invalid API key")
        if key is None or refused is not None:
            with contextlib.suppress(*Gone):
                assert refused is not None
                await websocket.send_text(orjson.dumps(envelope(refused[0])).decode())
                await websocket.close(1008, refused[1])
            return
        try:
            await Connection(websocket, engine, key, max_seconds, streams, reasoning_events).serve()
        except Exception:
            log.exception("WebSocket connection failed")
            with contextlib.suppress(*Gone, RuntimeError):
                await websocket.close(1011)

    return endpoint
