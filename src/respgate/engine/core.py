"""`Engine`: the façade the server uses. It admits a request (shutdown, routing, the key's
limits), opens the provider (through the tool loop or compaction when the request asks),
starts a `Run` for it, foreground or background with its event log, and stops them all at
shutdown; context loading and stored responses are its mixins (`context.py`, `stored.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import carry, toolloop
from ..config import McpConfig
from ..conversations import Conversations
from ..limits import Grant, Limits
from ..observe import Observer, Observers, RunInfo
from ..protocol.builder import ResponseBuilder
from ..protocol.errors import ApiError, invalid
from ..protocol.ids import new_id
from ..protocol.lifecycle import ReasoningEvents
from ..protocol.request import CompactRequest, CreateRequest
from ..protocol.response import new_response, usage_object
from ..protocol.signals import Compaction, Failure, Finish, Signal, Usage
from ..protocol.surface import SurfaceFactory
from ..providers.base import ModelCall, close_quietly
from ..providers.registry import ProviderRegistry
from ..seal import Sealer
from ..store.base import ResponseStore, StoredResponse
from ..store.keys import ApiKey
from ..tools.mcp import McpServer
from ..usage import Prices, UsageLog
from .context import ContextLoading
from .run import SHUTDOWN, Run, StartRecord, Step, then_always, then_finish
from .stored import StoredResponses

McpServers = dict[str, McpServer]  # the `mcp` servers the gateway runs for a request, by label

log = logging.getLogger("respgate.engine")


@dataclass(slots=True)
class Queued:
    """A background response as queued, and the response headers for its request."""

    response: dict[str, Any]
    headers: dict[str, str]


async def prewarm() -> AsyncIterator[Signal]:
    """The signals of a `generate: false` request (Codex's prewarm): no model is called and
    the response completes with no output, so it records its context for the next turn
    (`previous_response_id`) and holds nothing a client could take as an answer."""
    yield Usage(0, 0)
    yield Finish()


def _as_api_error(exc: Exception) -> ApiError:
    """What the client is answered for `exc` (an unexpected exception is a 500)."""
    if isinstance(exc, ApiError):
        return exc
    return ApiError(500, f"The gateway hit an internal error ({type(exc).__name__}).",
                    code="server_error")  # fmt: skip


class Engine(ContextLoading, StoredResponses):
    """Runs responses and answers for stored ones.

    `store` is a `ResponseStore`, or an async callable that opens one in the
    server's event loop (`start()` calls it). Without a store nothing is kept:
    `store: true` is a no-op and `previous_response_id` is always not found.
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        store: ResponseStore | Callable[[], Awaitable[ResponseStore]] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        expire_every: float = 3600.0,
        observers: Iterable[Observer] = (),
        limits: Limits | None = None,
        prices: Prices | None = None,
        seal_key: bytes | None = None,
        reasoning_events: ReasoningEvents = "openai",
        mcp: McpConfig | None = None,
    ) -> None:
        self.registry = registry
        self.mcp = mcp or McpConfig()  # the MCP servers requests may name (`toolloop.py`)
        self.reasoning_events = reasoning_events  # unless a request names its own
        # Seals compaction items and reasoning carriers (`carry.py`). Without `seal_key`,
        # `start()` takes the store's key (made by the first process); without a store the
        # key is this process's own.
        self.sealer = Sealer(seal_key or os.urandom(32))
        self._seal_key_pending = seal_key is None  # the store's key is still to be read
        self.limits = limits
        # Every finished response's usage and cost, written to the store off the hot path.
        self.usage = UsageLog(lambda: self.store)
        self.observers = Observers(
            [*observers, self.usage], cost=None if prices is None else prices.cost
        )
        self._open_store = store if callable(store) and not hasattr(store, "save") else None
        self.store: ResponseStore | None = None if self._open_store else store  # type: ignore[assignment]
        self.clock = clock
        self.expire_every = expire_every
        self.runs: set[Run] = set()
        self.background: dict[str, Run] = {}
        self.accepting = True
        self.draining = False  # set on SIGTERM: /readyz says 503 so balancers stop sending
        self._tasks: set[asyncio.Task[None]] = set()  # background event-log writers
        self._expirer: asyncio.Task[None] | None = None
        self.conversations = Conversations(lambda: self.store, clock)

    def _now(self) -> int:
        return int(self.clock())

    async def start(self) -> None:
        """Open the store, fail what a dead process left in flight, and expire old records."""
        if self._open_store is not None:
            self.store = await self._open_store()
        try:
            await self._load_seal_key()
        except ApiError:
            log.warning("the seal key could not be read from the store yet")
        if self.store is not None:
            failed = await self.store.recover()
            if failed:
                log.warning("marked %d responses of a stopped process failed", len(failed))
            self._expirer = asyncio.create_task(self._expire_loop())

    async def ready(self, timeout: float = 2.0) -> str | None:
        """None when this process should get traffic, else why not: draining, or the
        store not answering a read within `timeout` seconds."""
        if self.draining or not self.accepting:
            return "draining"
        if self._open_store is not None and self.store is None:
            return "store not open"
        if self.store is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self.store.get("resp_readyz", "")
            except Exception as exc:
                return f"store unreachable: {type(exc).__name__}: {exc}"[:300]
        return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire_loop(self) -> None:
        assert self.store is not None
        while True:
            try:
                await self.store.expire()
            except Exception:
                log.exception("expiring stored responses failed")
            await asyncio.sleep(self.expire_every)

    def _accept(
        self, req: CreateRequest, tenant: str, transport: str, request_id: str | None
    ) -> RunInfo:
        assert req.model is not None
        info = RunInfo(tenant, req.model, transport, request_id=request_id)
        self.observers.accepted(info)
        return info

    @contextlib.asynccontextmanager
    async def _admitted(
        self, req: CreateRequest, info: RunInfo, key: ApiKey | None
    ) -> AsyncIterator[tuple[Grant, McpServers]]:
        """May this response start (not shutting down, a model that serves it, MCP servers
        it may reach, the key's rate limits: 503, 404/400, 429)? Yields the key's `Grant`
        and the `mcp` servers the gateway runs for it (none when the model's upstream runs
        them itself: `toolloop.passed_through`). Whatever fails before the response
        starts, here or in the `async with` body, gives the grant back and is told to the
        observers as `rejected`."""
        grant = Grant()
        try:
            if not self.accepting:
                raise ApiError(503, "The server is shutting down.", code="server_shutting_down")
            self.registry.check(info.model, req)
            servers: McpServers = {}
            if not toolloop.passed_through(self.mcp, self.registry.kinds(info.model)):
                servers = toolloop.servers(req, self.mcp, info.tenant)
            if self.limits is not None:
                grant = await self.limits.admit(key, info)
            yield grant, servers
        except Exception as exc:
            await grant.finish(None)
            self.observers.rejected(info, _as_api_error(exc))
            raise
        except BaseException:
            await asyncio.shield(grant.finish(None))
            raise

    @staticmethod
    def _call(req: CreateRequest, items: list[dict[str, Any]], info: RunInfo) -> ModelCall:
        """The model call; the request id goes upstream as `x-request-id`. Its upstream
        attempts are the run's (`info.attempts`, the same list)."""
        headers = {"x-request-id": info.request_id} if info.request_id else {}
        call = ModelCall(req, items, model=info.model, instructions=req.instructions,
                         headers=headers)  # fmt: skip
        info.attempts = call.attempts
        return call

    def _opened(self, info: RunInfo, call: ModelCall) -> None:
        """Record who serves the call (the last attempt, a built-in model, or no one for a
        prewarm: logs and traces say `provider=prewarm`)."""
        if call.attempts:
            info.provider = call.attempts[-1].provider
            info.upstream_model = call.attempts[-1].upstream_model
        elif call.request.generate is False:
            info.provider, info.upstream_model = "prewarm", None
        else:
            info.provider, info.upstream_model = "builtin", call.model
        self.observers.upstream_opened(info)

    async def create(
        self,
        req: CreateRequest,
        *,
        tenant: str = "",
        key: ApiKey | None = None,
        context: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        transport: str | None = None,
        reasoning_events: ReasoningEvents | None = None,
        surface: SurfaceFactory | None = None,
    ) -> Run:
        """Start a response; raises `ApiError` for anything that fails before the first byte.
        `key`: the caller's API key (its rate limits). `context`: the model context already
        resolved by `context()` (WebSocket mode). `request_id` and `transport` ("sse",
        "json", "websocket") are for the observers. `reasoning_events`: the raw reasoning
        event names (None: the engine's). `surface`: makes the builder of another inbound
        surface (Chat Completions, Messages), whose events the run then yields instead of
        the Responses events; the Responses builder still keeps the record."""
        info = self._accept(req, tenant, transport or ("sse" if req.stream else "json"), request_id)
        call = self._call(req, [], info)
        compacting = carry.is_compaction_trigger(req.items)
        async with self._admitted(req, info, key) as (grant, servers):
            _, items = await self._prepare(req, tenant, call, context, compacting)
            signals = await self._open(info, call, tenant, compacting, servers)
        self._opened(info, call)
        response = new_response(req, new_id("response"), self._now())
        builder = self._builder(req, response, tenant, info, reasoning_events)
        opening = builder.open()
        surface_builder = None if surface is None else surface(builder.snapshot(), info.provider)
        if surface_builder is not None:
            opening = surface_builder.open()
        persist = start = None
        if req.store is not False and self.store is not None:
            start = StartRecord(
                self.store, StoredResponse(builder.snapshot(), list(req.items), tenant)
            )
            persist = self._persist_for(req, tenant, start)
        persist = self._then_append(req, tenant, persist)
        run = Run(
            builder,
            signals,
            then_finish(persist, grant),
            info=info,
            observers=self.observers,
            surface=surface_builder,
            start=start,
        )
        run.context = items
        run.warnings[:0] = req.warnings
        run.warnings += [w for w in call.warnings if w not in run.warnings]
        run.headers = grant.headers
        run.push(opening)
        self._track(run, grant)
        return run

    def _track(self, run: Run, grant: Grant) -> None:
        self.runs.add(run)
        run.start()
        assert run.task is not None

        def done(_: object) -> None:
            self.runs.discard(run)
            if not grant.finished:  # ended without its terminal step (cancelled outright)
                self._spawn(grant.finish(run.response.get("usage")))

        run.task.add_done_callback(done)

    async def create_background(
        self,
        req: CreateRequest,
        *,
        tenant: str = "",
        key: ApiKey | None = None,
        request_id: str | None = None,
        reasoning_events: ReasoningEvents | None = None,
    ) -> Queued:
        """Queue a background response and return it (status `queued`); generation runs in
        a task whose every event is appended to the response's log."""
        info = self._accept(req, tenant, "background", request_id)
        async with self._admitted(req, info, key) as (grant, servers):
            if self.store is None:
                raise invalid("Background responses need a configured store.", "background")
            call = self._call(req, [], info)
            compacting = carry.is_compaction_trigger(req.items)
            await self._prepare(req, tenant, call, None, compacting)
            response = new_response(req, new_id("response"), self._now())
            builder = self._builder(req, response, tenant, info, reasoning_events)
            queued = builder.open(queued=True)
            await self.store.save(StoredResponse(builder.response, list(req.items), tenant))
            await self.store.append_events(response["id"], queued)
        snapshot = builder.snapshot()
        run = Run(
            builder,
            self._open_signals(info, call, tenant, compacting, servers),
            then_finish(self._then_append(req, tenant, None), grant),
            info=info,
            observers=self.observers,
        )
        run.push(builder.run())
        self.background[run.response_id] = run
        self._track(run, grant)
        self._spawn(self._log(run))
        return Queued(snapshot, grant.headers)

    async def _open(
        self,
        info: RunInfo,
        call: ModelCall,
        tenant: str,
        compacting: bool,
        servers: McpServers | None = None,
    ) -> AsyncIterator[Signal]:
        """The call's signals: none from a model for a prewarm (`generate: false`), the
        tool loop's when the gateway runs `mcp` `servers` for it (`_admitted`), else the
        provider's; when `compacting`, folded into one `Compaction` (the summary sealed for
        `tenant`). Raises `ApiError` when the provider cannot be opened."""
        if call.request.generate is False:
            signals = prewarm()
        elif servers and not compacting:
            opener = functools.partial(self.registry.open, info.model)
            used = functools.partial(self.observers.tool_used, info)
            signals = await toolloop.ToolLoop(call, servers, self.mcp, opener, used).open()
        else:
            signals = await self.registry.open(info.model, call)
        if not compacting:
            return signals
        call.warnings += getattr(signals, "warnings", ())  # the wrapper has none of its own
        return carry.compacting(signals, lambda summary: self._seal_summary(tenant, summary))

    async def _open_signals(
        self, info: RunInfo, call: ModelCall, tenant: str, compacting: bool, servers: McpServers
    ) -> AsyncIterator[Signal]:
        """`_open`'s signals, with an error while opening the provider as a `Failure`
        (a background run has already answered its request)."""
        try:
            signals = await self._open(info, call, tenant, compacting, servers)
        except ApiError as err:
            yield Failure(err.code or "upstream_error", err.message)
            return
        self._opened(info, call)
        try:
            async for signal in signals:
                yield signal
        finally:
            await close_quietly(signals)

    async def _log(self, run: Run) -> None:
        """Append a background run's events to its log as they come (each write takes
        everything emitted meanwhile). Stops the run if the response was cancelled."""
        assert self.store is not None
        try:
            while batch := await run.next_batch():
                if not await self.store.append_events(run.response_id, batch):
                    run.abort("cancelled", "The response was cancelled.")
        except Exception:
            log.exception("response %s: the event log could not be written", run.response_id)
            run.abort("server_error", "The response's event log could not be written.")
        finally:
            self.background.pop(run.response_id, None)

    def _builder(
        self,
        req: CreateRequest,
        response: dict[str, Any],
        tenant: str,
        info: RunInfo,
        reasoning_events: ReasoningEvents | None,
    ) -> ResponseBuilder:
        """The response's builder; its reasoning items carry what the provider that made
        them (`info.provider`, known once the call is open) needs to see them again.
        `reasoning_events`: the raw reasoning event names (None: the engine's)."""

        def seal(item: dict[str, Any]) -> str:
            payload = {"provider": info.provider, **carry.reasoning_payload(item)}
            return self.sealer.seal("reasoning", tenant, payload)

        expose = "reasoning.encrypted_content" in (req.include or ())
        return ResponseBuilder(
            response,
            clock=self._now,
            carry=seal,
            expose_carried=expose,
            reasoning_events=reasoning_events or self.reasoning_events,
        )

    async def compact(
        self,
        body: CompactRequest,
        *,
        tenant: str = "",
        key: ApiKey | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """`POST /v1/responses/compact`: the context (previous chain + input) compacted
        into a window to start a new chain from: its user messages, then one compaction
        item holding the routed model's summary of the whole."""
        req = body.as_create_request()
        info = self._accept(req, tenant, "compact", request_id)
        call = self._call(req, [], info)
        async with self._admitted(req, info, key) as (grant, _):
            items, _ = await self._prepare(req, tenant, call, None, True)
            compacted = await self._open(info, call, tenant, compacting=True)
            self._opened(info, call)
            summary: str | None = None
            usage: dict[str, Any] | None = None
            async with contextlib.aclosing(compacted):
                async for signal in compacted:
                    if isinstance(signal, Compaction):
                        summary = signal.encrypted_content
                    elif isinstance(signal, Usage):
                        usage = usage_object(
                            signal.input_tokens,
                            signal.output_tokens,
                            signal.cached_tokens,
                            signal.reasoning_tokens,
                            signal.cache_write_tokens,
                        )
                    elif isinstance(signal, Failure):
                        raise carry.compaction_failure(signal)
            if summary is None:
                raise carry.compaction_failure(
                    Failure("upstream_truncated", "the upstream stream ended early")
                )
            kept = carry.retained(items)
            compaction = {"id": new_id("compaction"), "type": "compaction",
                          "encrypted_content": summary}  # fmt: skip
            info.response_id = new_id("response")
            result = {
                "id": info.response_id,
                "object": "response.compaction",
                "created_at": self._now(),
                "output": [*kept, compaction],
                "usage": usage or usage_object(0, 0),
            }
            await grant.finish(result["usage"])
        self.observers.finished(info, {**result, "status": "completed", "model": info.model})
        self.observers.released(info)  # answered in one piece: nothing left to deliver
        return result

    def _persist_for(self, req: CreateRequest, tenant: str, start: StartRecord) -> Step:
        """The final save, after the in_progress record `start` (whatever became of it)."""

        async def persist(run: Run) -> None:
            assert self.store is not None
            await start.written()
            await self.store.save(StoredResponse(run.builder.stored(), list(req.items), tenant))

        return persist

    def _then_append(self, req: CreateRequest, tenant: str, persist: Step | None) -> Step | None:
        """The final save, then the turn appended to the request's `conversation`."""
        conversation_id = req.conversation_id
        if conversation_id is None:
            return persist
        return then_always(
            persist,
            lambda run: self.conversations.append_turn(
                conversation_id, tenant, req.items, run.response
            ),
        )

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; let runs finish for `grace` seconds, then end the rest as failed."""
        self.accepting = False
        self.draining = True
        pending = [r.task for r in self.runs if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for run in list(self.runs):
            run.abort(*SHUTDOWN)
        pending = [r.task for r in self.runs if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._expirer is not None:
            self._expirer.cancel()
        await self.observers.aclose()  # the usage log is written before the store closes
        if self.limits is not None:
            await self.limits.aclose()
        await self.registry.aclose()
        if self.store is not None and self._open_store is not None:
            await self.store.close()  # opened here, closed here
