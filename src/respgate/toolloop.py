"""Gateway-run tools: the tool loop between a provider's signals and the builder.

A request's `mcp` tools (`protocol.request.McpTool`) name remote MCP servers. Before the
first byte, `servers()` resolves each to a server the operator allows (`[mcp]`; a 400
naming `tools[i].server_url` or `.server_label` otherwise). `ToolLoop.open()` then lists
each server's tools (or reuses a listing found in the context), runs the calls a client
approved (`mcp_approval_response`), and opens the model with the servers' tools offered
as plain functions named `<label>__<tool>` (so every provider, `echo` included, sees
functions and nothing else). Its signals pass through with one change: calls of those
functions are held back, and when the model's turn ends they run (concurrently) and
become `mcp_call` items (`HostedItem` signals: the builder's lifecycle table knows their
events), their outputs go into the context, and the model is called again, until it
answers without calling one, a call needs approval (an `mcp_approval_request` item ends
the response), or `[mcp] max_steps` model calls were made (`incomplete`, `max_steps`).
Usage is summed over the model calls. Providers never learn that tools ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson

from .config import McpConfig
from .observe import ToolUse
from .protocol.errors import ApiError, invalid, quote
from .protocol.ids import new_id
from .protocol.request import CreateRequest, McpTool, McpToolNames
from .protocol.signals import (
    Failure,
    Finish,
    HostedItem,
    ReasoningDelta,
    ReasoningOpaque,
    Signal,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .providers.base import CARRIER, ModelCall, close_quietly
from .providers.tools import NAMESPACE_SEPARATOR, wire_name
from .tools.mcp import McpError, McpServer, McpSessions

Opener = Callable[[ModelCall], Awaitable[AsyncIterator[Signal]]]

STEP_LIMIT = "max_steps"  # the `incomplete_details.reason` when `[mcp] max_steps` ends a response
DECLINED = "The user declined this tool call."
# Context item types that only the tool loop reads (the model sees what they mean otherwise).
LOOP_ITEMS = frozenset({"mcp_list_tools", "mcp_approval_request", "mcp_approval_response"})


# ---------------------------------------------------------------- which servers


def passed_through(config: McpConfig, kinds: frozenset[str]) -> bool:
    """Does the upstream run a request's `mcp` tools itself? Only with `[mcp] passthrough =
    "responses"` on a route whose every provider (fallbacks too) is a native Responses
    upstream: the tools go there whole (`headers` and `authorization` included) and its
    `mcp_*` items come back as hosted items; `[mcp]`'s allow lists do not apply."""
    return config.passthrough == "responses" and kinds == {"responses"}


def allowed_url(url: str, config: McpConfig) -> bool:
    """May a client name `url`? Its host is in `allowed_hosts`, or it starts with one of
    `allowed_urls` at a path boundary (`https://a.example` does not admit
    `https://a.example.evil/`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return False
    if parts.hostname.lower() in config.allowed_hosts:
        return True
    return any(
        url == prefix
        or (url.startswith(prefix) and (prefix.endswith("/") or url[len(prefix)] in "/?#"))
        for prefix in config.allowed_urls
    )


def servers(req: CreateRequest, config: McpConfig, tenant: str) -> dict[str, McpServer]:
    """The request's MCP servers by label; a 400 naming the field for one this gateway
    does not reach (a URL not allowed, an unknown label, a connector, a named server the
    tenant may not use: told as unknown)."""
    found: dict[str, McpServer] = {}
    choice = req.tool_choice
    mcp_choice = isinstance(choice, dict) and choice.get("type") == "mcp"
    if mcp_choice and choice.get("server_label") not in req.mcp:  # type: ignore[union-attr]
        raise invalid(
            "A `tool_choice` of type `mcp` must name the `server_label` of an `mcp` tool.",
            "tool_choice.server_label",
        )
    if not req.mcp:
        return found
    functions = {t.get("name") for t in req.tools or [] if t.get("type") == "function"}
    for i, tool in enumerate(req.tools or []):
        if tool.get("type") != "mcp":
            continue
        label = tool["server_label"]
        mcp, param = req.mcp[label], f"tools[{i}]"
        for field_name, what in (("connector_id", "Connectors"), ("tunnel_id", "MCP tunnels")):
            if mcp.server_url is None and getattr(mcp, field_name) is not None:
                raise invalid(
                    f"{what} are not available through this gateway; name a `server_url`.",
                    f"{param}.{field_name}",
                )
        if mcp.server_url is None:
            named = config.servers.get(label)
            if named is not None and named.tenants and tenant not in named.tenants:
                named = None
            if named is None:
                raise invalid(
                    f"No MCP server named {quote(label)} is configured on this gateway "
                    "and the tool names no `server_url`.",
                    f"{param}.server_label",
                )
            url, headers = named.url, dict(named.headers)
        elif allowed_url(mcp.server_url, config):
            url, headers = mcp.server_url, {}  # a named server's secrets never go elsewhere
        else:
            raise invalid(
                f"The MCP server URL {quote(mcp.server_url)} is not allowed by this gateway.",
                f"{param}.server_url",
            )
        headers.update(mcp.headers or {})
        if mcp.authorization:
            headers["Authorization"] = f"Bearer {mcp.authorization}"
        if any(name.startswith(label + NAMESPACE_SEPARATOR) for name in functions if name):
            raise invalid(
                f"Function names starting with {quote(label + NAMESPACE_SEPARATOR)} are "
                "the MCP server's tools; rename the function or the server label.",
                f"{param}.server_label",
            )
        found[label] = McpServer(label, url, headers)
    return found


# ---------------------------------------------------------------- filters


def _matches(names: McpToolNames | None, tool: dict[str, Any]) -> bool:
    if names is None:
        return False
    if names.tool_names is not None and tool["name"] not in names.tool_names:
        return False
    if names.read_only and not (tool.get("annotations") or {}).get("readOnlyHint"):
        return False
    return names.tool_names is not None or bool(names.read_only)


def allowed_tools(mcp: McpTool, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed tools `allowed_tools` lets the model see."""
    allowed = mcp.allowed_tools
    if allowed is None:
        return tools
    if isinstance(allowed, list):
        return [t for t in tools if t["name"] in allowed]
    names = McpToolNames(tool_names=allowed.tool_names, read_only=allowed.read_only)
    return [t for t in tools if _matches(names, t)]


def needs_approval(mcp: McpTool, tool: dict[str, Any]) -> bool:
    """`require_approval`: `never`, `always` (OpenAI's default) or filters by name."""
    rule = mcp.require_approval
    if rule is None or rule == "always":
        return True
    if rule == "never":
        return False
    return not _matches(rule.never, tool)


# ---------------------------------------------------------------- the model's view


def _function(label: str, tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": wire_name(tool["name"], label),
        "description": tool.get("description"),
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        "strict": False,
    }


def _call_pair(call_id: str, name: str, arguments: str, output: str) -> list[dict[str, Any]]:
    return [
        {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments},
        {"type": "function_call_output", "call_id": call_id, "output": output},
    ]


def _output_of(item: dict[str, Any]) -> str:
    """What the model is told a call gave: its output, or its error's text."""
    error = item.get("error")
    if not error:
        return item.get("output") or ""
    if isinstance(error, dict):  # OpenAI's error object (`tools.mcp.McpError`)
        if "message" in error:
            error = error["message"]
        else:
            blocks = error.get("content") or []
            error = "\n".join(b.get("text", "") for b in blocks if isinstance(b, dict))
    return f"Error: {error}"


def model_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The context as a model sees it: an `mcp_call` is a function call and its output,
    a declined approval request a call whose output says so; listings and approvals
    are the loop's own (left out)."""
    declined = {
        item.get("approval_request_id")
        for item in items
        if item["type"] == "mcp_approval_response" and not item.get("approve")
    }
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item["type"]
        if kind == "mcp_call":
            name = wire_name(item.get("name", ""), item.get("server_label"))
            out += _call_pair(item["id"], name, item.get("arguments") or "{}", _output_of(item))
        elif kind == "mcp_approval_request" and item.get("id") in declined:
            name = wire_name(item.get("name", ""), item.get("server_label"))
            out += _call_pair(item["id"], name, item.get("arguments") or "{}", DECLINED)
        elif kind not in LOOP_ITEMS:
            out.append(item)
    return out


# ---------------------------------------------------------------- the loop


@dataclass(slots=True)
class _Call:
    """A call of a gateway tool: from the model (its fragments) or approved earlier."""

    label: str
    name: str  # the tool's own name
    call_id: str
    chunks: list[str] = field(default_factory=list)
    approval_request_id: str | None = None
    number: int = 0  # its place among the response's calls (from 1), set when it runs

    @property
    def arguments(self) -> str:
        return "".join(self.chunks)


@dataclass(slots=True)
class _Totals:
    counts: list[int] = field(default_factory=lambda: [0] * 5)
    seen: bool = False

    def add(self, usage: Usage | None) -> None:
        if usage is not None:
            self.seen = True
            self.counts = [
                a + b
                for a, b in zip(
                    self.counts,
                    (
                        usage.input_tokens,
                        usage.output_tokens,
                        usage.cached_tokens,
                        usage.reasoning_tokens,
                        usage.cache_write_tokens,
                    ),
                    strict=True,
                )
            ]

    def signal(self) -> list[Signal]:
        return [Usage(*self.counts)] if self.seen else []


@dataclass(slots=True)
class _Turn:
    """One model call, besides the signals passed on."""

    calls: dict[int, _Call] = field(default_factory=dict)  # of the servers' tools, by index
    numbers: dict[tuple[type, int], int] = field(default_factory=dict)  # its other items
    text: list[str] = field(default_factory=list)  # its answer text (given back with the calls)
    usage: Usage | None = None
    end: Finish | Failure | None = None  # None: its stream was cut short
    held: list[_Call] = field(default_factory=list)  # calls waiting for approval
    # Its reasoning, as `carry.reasoning_payload` has it: given back to the provider that
    # made it (`providers.base.for_provider`), e.g. Anthropic's signed thinking before a
    # tool use, which it requires back with the tool's result.
    reasoning: list[dict[str, Any]] = field(default_factory=list)

    def think(self, signal: ReasoningDelta | ReasoningOpaque) -> None:
        """Reasoning text goes to the open reasoning; opaque state completes it."""
        if not self.reasoning or "opaque" in self.reasoning[-1]:
            self.reasoning.append({})
        payload = self.reasoning[-1]
        if isinstance(signal, ReasoningOpaque):
            payload["opaque"] = signal.encrypted_content
        else:
            payload[signal.kind] = payload.get(signal.kind, "") + signal.text


class ToolLoop:
    """One response's gateway tools (see the module docstring)."""

    def __init__(
        self,
        call: ModelCall,
        servers: dict[str, McpServer],
        config: McpConfig,
        open_model: Opener,
        used: Callable[[ToolUse], None] = lambda _: None,
    ) -> None:
        self.call = call
        self._used = used  # told of every listing and call (metrics, logs)
        self.servers = servers
        self.config = config
        self._open_model = open_model
        self._tools: dict[str, dict[str, Any]] = {}  # wire name -> listed tool (allowed)
        self._labels: dict[str, str] = {}  # wire name -> server label
        # Told to the model after the instructions: server descriptions, listing failures.
        self._notes: list[str] = []
        self._context: list[dict[str, Any]] = []  # what the model sees next
        self._index = itertools.count()  # the builder's item numbering, across model calls
        self._steps = 0  # model calls made
        self._calls = 0  # tool calls run (the request's `max_tool_calls` bounds them)
        # One session per server for the whole response (its listing and every call).
        self._sessions = McpSessions(max(config.list_timeout, config.call_timeout))

    # ------------------------------------------------------------ before the first byte

    async def open(self) -> AsyncIterator[Signal]:
        """List the servers' tools and open the model (its errors are raised as they
        would be without tools); the response's signals. When the input approves calls,
        the model is opened in the stream, after they ran: a call that ran is in the
        Response even if the model then fails."""
        prelude: list[Signal] = []
        items = self.call.items
        try:
            await self._list(items, prelude)
            self._context = model_items(items)
            approved = self._approved(items)
            signals = None if approved else await self._next_model_call()
        except BaseException:
            self._sessions.aclose()
            raise
        return _Signals(self._run(prelude, approved, signals), self._sessions)

    async def _list(self, items: list[dict[str, Any]], out: list[Signal]) -> None:
        """Each server's tools: from the last listing of it in the context, else listed now
        (all at once) as `mcp_list_tools` items."""
        held = {
            item.get("server_label"): item.get("tools") or []
            for item in items
            if item["type"] == "mcp_list_tools" and not item.get("error")
        }
        fresh = [label for label in self.servers if label not in held]
        listed = await asyncio.gather(*(self._list_one(label) for label in fresh))
        for label, item in zip(fresh, listed, strict=True):
            index = next(self._index)
            out += [
                HostedItem(index, {**item, "tools": [], "error": None}),
                HostedItem(index, event="response.mcp_list_tools.in_progress"),
                HostedItem(index, item, done=True),
            ]
            if item["error"]:
                self._notes.append(
                    f"The tools of MCP server {label!r} are unavailable: {item['error']}"
                )
            else:
                held[label] = item["tools"]
        for label, server_tools in held.items():
            if label not in self.servers:
                continue
            mcp = self.call.request.mcp[label]
            if mcp.server_description:
                prefix = wire_name("", label)
                self._notes.append(f"The tools named {prefix}* are those of MCP server "
                                   f"{label!r}: {mcp.server_description}")  # fmt: skip
            for tool in allowed_tools(mcp, server_tools):
                name = wire_name(tool["name"], label)
                self._tools[name] = tool
                self._labels[name] = label

    async def _list_one(self, label: str) -> dict[str, Any]:
        item: dict[str, Any] = {"id": new_id("mcp_list_tools"), "type": "mcp_list_tools",
                                "server_label": label, "tools": [], "error": None}  # fmt: skip
        started, kind = time.monotonic(), None
        try:
            item["tools"] = await self._sessions.list_tools(
                self.servers[label], self.config.list_timeout
            )
        except McpError as exc:
            item["error"], kind = str(exc), exc.error["type"]
        self._tell(label, None, started, kind)
        return item

    def _tell(self, label: str, tool: str | None, started: float, error: str | None) -> None:
        """Tell the observers; the server is named as the operator bounds it (a configured
        label, else the URL's host), never by a label a client made up."""
        server = self.servers[label]
        named = self.config.servers.get(label)
        if named is not None and named.url == server.url:
            name = label
        else:
            name = urlsplit(server.url).hostname or "?"
        self._used(ToolUse(name, tool, time.monotonic() - started, error))

    def _approved(self, items: list[dict[str, Any]]) -> list[_Call]:
        """Calls approved by an `mcp_approval_response` and not yet run (no `mcp_call`
        answers the request in the context)."""
        requests = {i.get("id"): i for i in items if i["type"] == "mcp_approval_request"}
        done = {i.get("approval_request_id") for i in items if i["type"] == "mcp_call"}
        calls = []
        for item in items:
            request_id = item.get("approval_request_id")
            if item["type"] != "mcp_approval_response" or not item.get("approve"):
                continue
            request = requests.get(request_id)
            if request is None or request_id in done:
                continue
            done.add(request_id)
            call = _Call(request.get("server_label", ""), request.get("name", ""), request_id)
            call.chunks.append(request.get("arguments") or "{}")
            call.approval_request_id = request_id
            calls.append(call)
        return calls

    async def _next_model_call(self) -> AsyncIterator[Signal]:
        """Open the model with the context so far. Once `max_tool_calls` calls ran, the
        servers' tools are no longer offered; after the first call, `tool_choice` no
        longer forces a call (the model answers with the results)."""
        self._steps += 1
        req = self.call.request
        spent = req.max_tool_calls is not None and self._calls >= req.max_tool_calls
        functions = [] if spent else [_function(self._labels[n], t) for n, t in self._tools.items()]
        tools = [t for t in req.tools or [] if t.get("type") != "mcp"] + functions
        request = msgspec.structs.replace(req, tools=tools or None, tool_choice=self._choice())
        instructions = "\n\n".join(t for t in (self.call.instructions, *self._notes) if t) or None
        call = dataclasses.replace(
            self.call, request=request, items=list(self._context), instructions=instructions
        )
        return await self._open_model(call)

    def _choice(self) -> str | dict[str, Any] | None:
        """The request's `tool_choice` for this model call: one of type `mcp` as functions
        (a tool: that function; a server: its functions, required); `auto` instead of a
        forced call once tools ran."""
        choice = self.call.request.tool_choice
        if self._calls and (choice == "required" or isinstance(choice, dict)):
            if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
                return {**choice, "mode": "auto"}
            return "auto"
        if not isinstance(choice, dict) or choice.get("type") != "mcp":
            return choice
        label = choice.get("server_label")
        if choice.get("name"):
            return {"type": "function", "name": wire_name(choice["name"], label)}
        names = [{"type": "function", "name": n} for n, lb in self._labels.items() if lb == label]
        return {"type": "allowed_tools", "mode": "required", "tools": names}

    # ------------------------------------------------------------ the stream

    async def _run(
        self, prelude: list[Signal], approved: list[_Call], signals: AsyncIterator[Signal] | None
    ) -> AsyncIterator[Signal]:
        for signal in prelude:
            yield signal
        if approved:
            async for signal in self._execute(approved):
                yield signal
            failure, signals = await self._reopen()
            if failure is not None:
                yield failure
                return
        totals = _Totals()
        while signals is not None:
            turn = _Turn()
            try:
                async for signal in self._relay(signals, turn):
                    yield signal
            finally:
                await close_quietly(signals)
            totals.add(turn.usage)
            end, signals = turn.end, None
            if isinstance(end, Finish) and end.reason == "stop" and turn.calls:
                async for signal in self._run_calls(turn):
                    yield signal
                end, signals = await self._next_step(turn)
            if signals is None:
                for signal in totals.signal():
                    yield signal
                if end is not None:  # (none: the stream was cut short; the builder says so)
                    yield end

    async def _relay(self, signals: AsyncIterator[Signal], turn: _Turn) -> AsyncIterator[Signal]:
        """One model call's signals, renumbered, without its calls of the servers' tools
        (kept in `turn`), its usage and its end (kept in `turn`)."""
        async for signal in signals:
            if isinstance(signal, ToolCallDelta):
                call = turn.calls.get(signal.index)
                key = (ToolCallDelta, signal.index)
                if call is None and key not in turn.numbers and signal.name in self._tools:
                    tool, label = self._tools[signal.name], self._labels[signal.name]
                    call_id = signal.call_id or new_id("call")
                    call = turn.calls[signal.index] = _Call(label, tool["name"], call_id)
                if call is not None:
                    call.chunks.append(signal.arguments)
                    continue
                signal = dataclasses.replace(signal, index=self._number(turn, key))
            elif isinstance(signal, HostedItem):
                key = (HostedItem, signal.index)
                signal = dataclasses.replace(signal, index=self._number(turn, key))
            elif isinstance(signal, Usage):
                turn.usage = signal
                continue
            elif isinstance(signal, Finish | Failure):
                turn.end = signal
                return
            elif isinstance(signal, TextDelta):
                turn.text.append(signal.text)
            elif isinstance(signal, ReasoningDelta | ReasoningOpaque):
                turn.think(signal)
            yield signal

    async def _run_calls(self, turn: _Turn) -> AsyncIterator[Signal]:
        """The turn's calls: run (those that need no approval), or asked for approval; its
        text goes into the context before them."""
        attempts = self.call.attempts  # (shared with every call opened: the router's)
        if attempts:
            for payload in turn.reasoning:
                carried = {"provider": attempts[-1].provider, **payload}
                self._context.append({"type": "reasoning", "summary": [], CARRIER: carried})
        if turn.text:
            text = {"type": "output_text", "text": "".join(turn.text)}
            self._context.append({"type": "message", "role": "assistant", "content": [text]})
        turn.held = [c for c in turn.calls.values() if self._needs_approval(c)]
        async for signal in self._execute([c for c in turn.calls.values() if c not in turn.held]):
            yield signal
        for call in turn.held:
            yield HostedItem(next(self._index), {
                "id": new_id("mcp_approval_request"), "type": "mcp_approval_request",
                "server_label": call.label, "name": call.name, "arguments": call.arguments,
            }, done=True)  # fmt: skip

    async def _next_step(
        self, turn: _Turn
    ) -> tuple[Finish | Failure | None, AsyncIterator[Signal] | None]:
        """After a turn's calls: the response's end, or the next model call's signals."""
        if turn.held or any(kind is ToolCallDelta for kind, _ in turn.numbers):
            return Finish(), None  # the client answers (approvals, its own functions)
        if self._steps >= self.config.max_steps:
            return Finish(STEP_LIMIT), None
        return await self._reopen()

    async def _reopen(self) -> tuple[Failure | None, AsyncIterator[Signal] | None]:
        """The next model call's signals, or why it could not be opened."""
        try:
            return None, await self._next_model_call()
        except ApiError as err:
            return Failure(err.code or "upstream_error", err.message), None

    def _number(self, turn: _Turn, key: tuple[type, int]) -> int:
        """The builder's index for one of the model's items (unique in the response)."""
        if key not in turn.numbers:
            turn.numbers[key] = next(self._index)
        return turn.numbers[key]

    def _needs_approval(self, call: _Call) -> bool:
        tool = self._tools[wire_name(call.name, call.label)]
        return needs_approval(self.call.request.mcp[call.label], tool)

    # ------------------------------------------------------------ running calls

    async def _execute(self, calls: list[_Call]) -> AsyncIterator[Signal]:
        """Run `calls` concurrently; each becomes an `mcp_call` item (in order: the first
        is shown in progress while they all run), and a call and output in the context."""
        for call in calls:
            self._calls += 1
            call.number = self._calls
        tasks = [asyncio.create_task(self._call_one(call)) for call in calls]
        pairs = []
        try:
            for call, task in zip(calls, tasks, strict=True):
                index = next(self._index)
                item = {"id": new_id("mcp_call"), "type": "mcp_call", "server_label": call.label,
                        "name": call.name, "arguments": "", "output": None, "error": None,
                        "status": "in_progress", "approval_request_id": call.approval_request_id}  # fmt: skip
                arguments = call.arguments
                yield HostedItem(index, item)
                yield HostedItem(index, event="response.mcp_call.in_progress")
                yield HostedItem(
                    index, event="response.mcp_call_arguments.delta", data={"delta": arguments}
                )
                yield HostedItem(
                    index, event="response.mcp_call_arguments.done", data={"arguments": arguments}
                )
                output, error = await task
                done = {**item, "arguments": arguments, "output": output, "error": error,
                        "status": "failed" if error else "completed"}  # fmt: skip
                yield HostedItem(index, done, done=True)
                name = wire_name(call.name, call.label)
                pairs.append(_call_pair(call.call_id, name, arguments or "{}", _output_of(done)))
        finally:
            for task in tasks:
                task.cancel()
        # The calls, then their outputs: one assistant turn, then the results (as a
        # model made them; Anthropic's messages need tool results after all the calls).
        self._context += [pair[0] for pair in pairs] + [pair[1] for pair in pairs]

    async def _call_one(self, call: _Call) -> tuple[str | None, dict[str, Any] | None]:
        """(output, None) or (None, the error object) of one call; a call the gateway
        refuses (unknown tool, arguments not a JSON object) never reaches the server."""
        server = self.servers.get(call.label)
        limit = self.call.request.max_tool_calls
        try:
            if limit is not None and call.number > limit:
                raise _refused(f"The response's max_tool_calls ({limit}) was reached")
            if server is None:
                raise _refused(f"MCP server {call.label!r} is not among this request's tools")
            if wire_name(call.name, call.label) not in self._tools:
                raise _refused(f"Tool {call.name!r} is not available on MCP server {call.label!r}")
            try:
                arguments = orjson.loads(call.arguments or "{}")
            except orjson.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                raise _refused(f"The arguments of tool {call.name!r} are not a JSON object")
        except McpError as exc:
            return None, exc.error
        started = time.monotonic()
        output, error = None, None
        try:
            output = await self._sessions.call_tool(
                server, call.name, arguments, self.config.call_timeout
            )
        except McpError as exc:
            error = exc.error
        self._tell(call.label, call.name, started, error and error["type"])
        return output, error


class _Signals:
    """The loop's signals; closing them also ends the response's MCP sessions (even if
    they were never iterated: a run aborted before its first step)."""

    def __init__(self, signals: AsyncGenerator[Signal, None], sessions: McpSessions) -> None:
        self._signals = signals
        self._sessions = sessions

    def __aiter__(self) -> _Signals:
        return self

    async def __anext__(self) -> Signal:
        return await self._signals.__anext__()

    async def aclose(self) -> None:
        try:
            await self._signals.aclose()
        finally:
            self._sessions.aclose()


def _refused(message: str) -> McpError:
    """A call the gateway does not send (JSON-RPC's "invalid params")."""
    return McpError(message, {"type": "mcp_protocol_error", "code": -32602, "message": message})
