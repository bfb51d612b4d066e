"""The built-in offline model `echo`: deterministic, no network, no key.

It honours the request for real so that every protocol path can be exercised
(rules documented in README "The echo model"):

- text: `Echo: <last user text>` (a message's last text part), streamed one word (with its trailing space)
  at a time;
- tools: with function tools and `tool_choice` other than `none`, when the
  last input item is a user message, it calls a tool (the named one for a
  specific choice, the first allowed one for `allowed_tools`, otherwise the
  first; every function tool when `parallel_tool_calls` is on and there are
  several), with arguments built from the tool's JSON schema (string fields
  get the user text); when the last item is a `function_call_output` it
  answers `Tool output: <output>`; a request's `mcp` tools reach it as such functions
  (`<server_label>__<tool>`, the gateway's tool loop, `toolloop.py`), so it calls every
  allowed tool of the server, deterministically;
- `reasoning.effort` (not `none`): a reasoning item with the summary
  `Thinking about: <text>` first;
- `max_output_tokens` smaller than the reply: the reply is cut there and the
  response ends `incomplete` (`max_output_tokens`);
- `text.format` `json_schema`: a JSON document that validates against the
  schema; `json_object`: `{"echo": <text>}`;
- stop sequences (`CreateRequest.stop`, from another surface): the reply ends before the
  first one;
- scenario switches in request `metadata`: `echo_scenario` = `fail` (half the
  text, then a failure), `refusal` (a refusal), `long` (`echo_tokens` words,
  default 1000, at most 100,000); `echo_delay_ms` = a delay before every token (slow
  drip, at most 60,000). Other values of these two are a 400 naming the key.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..protocol.errors import invalid, quote
from ..protocol.ids import new_id
from ..protocol.request import CreateRequest
from ..protocol.signals import (
    Failure,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Signal,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .base import ModelCall

_TOKEN = re.compile(r"\S+\s*|\s+")
ARGUMENT_CHUNK = 8  # characters of tool-call arguments per delta
YIELD_EVERY = 32  # tokens between yields to the event loop when there is no delay
MAX_TOKENS = 100_000  # metadata.echo_tokens
MAX_DELAY_MS = 60_000  # metadata.echo_delay_ms


def _metadata_int(meta: dict[str, str], key: str, default: int, most: int) -> int:
    raw = meta.get(key)
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and int(raw) <= most):
        raise invalid(
            f"`metadata.{key}` must be a whole number from 0 to {most}, got {quote(raw)}.",
            f"metadata.{key}",
        )
    return int(raw)


def echo_settings(req: CreateRequest) -> tuple[str, float, int]:
    """(scenario, delay before each token in s, words of the `long` scenario) from the
    request's metadata; `ApiError(400)` naming the key for a value out of range."""
    meta = req.metadata or {}
    delay_ms = _metadata_int(meta, "echo_delay_ms", 0, MAX_DELAY_MS)
    count = _metadata_int(meta, "echo_tokens", 1000, MAX_TOKENS)
    return meta.get("echo_scenario", ""), delay_ms / 1000, count


def tokens(text: str) -> list[str]:
    """Split text into echo tokens: each word with the whitespace that follows it."""
    return _TOKEN.findall(text)


def item_text(item: dict[str, Any]) -> str:
    """The plain text of an input item: a message's last text part (clients such as Claude
    Code put context before the prompt in parts of their own), a tool output's text."""
    content = item.get("content") if item.get("type") == "message" else item.get("output")
    if isinstance(content, str):
        return content
    texts = [p.get("text") or p.get("refusal") or "" for p in content or [] if isinstance(p, dict)]
    if item.get("type") == "message":
        texts = [t for t in texts if t.strip()][-1:]
    return " ".join(texts).strip()


# Schema keywords that name a property's value: such a property is filled even if optional.
NAMED_VALUE = {"default", "enum", "const"}


def value_for_schema(schema: dict[str, Any] | None, text: str) -> Any:
    """A value that validates against `schema`; strings are filled with `text`.
    (`schema` has the structure `protocol.request.schema_problem` checks.)"""
    if isinstance(schema, bool):
        return text if schema else None  # `false` admits nothing: the closest miss
    schema = schema or {}
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return value_for_schema(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        # Required properties, plus those whose schema names a value (default, enum, const):
        # an optional field left out is what a model does, and a client may refuse a
        # made-up value for it (Codex's `exec_command` with `yield_time_ms: 0`).
        props = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        return {
            name: sub["default"]
            if isinstance(sub, dict) and "default" in sub
            else value_for_schema(sub, text)
            for name, sub in props.items()
            if name in required or (isinstance(sub, dict) and sub.keys() & NAMED_VALUE)
        }
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        least = schema.get("minimum", 0)
        if kind == "integer" and isinstance(least, float) and abs(least) < 2**63:
            least = math.ceil(least)  # an integer is written as one (`0`, never `0.0`)
        return max(0, least)  # a huge float minimum stays a float (still an integer)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return text


def _chosen_tools(call: ModelCall) -> list[dict[str, Any]]:
    req = call.request
    functions = [t for t in req.tools or [] if t.get("type") == "function"]
    choice = req.tool_choice if req.tool_choice is not None else "auto"
    if not functions or choice == "none":
        return []
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            return [t for t in functions if t["name"] == choice.get("name")][:1]
        if choice.get("type") == "allowed_tools":
            allowed = {t.get("name") for t in choice.get("tools") or []}
            functions = [t for t in functions if t["name"] in allowed]
    parallel = req.parallel_tool_calls is not False
    return functions if parallel else functions[:1]


class EchoProvider:
    """The `echo` model."""

    name = "echo"

    def check(self, req: CreateRequest) -> None:
        """Raise `ApiError(400)` for a request `echo` cannot serve (before anything starts)."""
        echo_settings(req)

    async def open(self, call: ModelCall) -> AsyncIterator[Signal]:
        self.check(call.request)
        return self._stream(call)

    async def aclose(self) -> None:
        return None

    async def _stream(self, call: ModelCall) -> AsyncIterator[Signal]:
        req = call.request
        scenario, delay, count = echo_settings(req)
        items = call.items
        last = items[-1] if items else {}
        text = item_text(last) if last else ""
        input_tokens = sum(
            len(tokens(item_text(i)))
            for i in items
            if i.get("type") in ("message", "function_call_output")
        )
        budget = req.max_output_tokens
        produced = 0

        paced = 0

        async def pace() -> None:
            nonlocal paced
            paced += 1
            if delay:
                await asyncio.sleep(delay)
            elif paced % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let other streams run during a long reply

        thought = 0  # reasoning tokens, counted in `produced` too

        def usage() -> Usage:
            return Usage(input_tokens, produced, reasoning_tokens=thought)

        if req.reasoning is not None and req.reasoning.effort not in (None, "none"):
            for tok in tokens(f"Thinking about: {text}"):
                if budget is not None and produced >= budget:
                    break
                await pace()
                produced += 1
                thought += 1
                yield ReasoningDelta(tok)

        tools = _chosen_tools(call) if last.get("type") == "message" else []
        if tools and scenario not in ("refusal", "fail"):
            for index, tool in enumerate(tools):
                arguments = orjson.dumps(value_for_schema(tool.get("parameters"), text)).decode()
                call_id = new_id("call")  # the same id on every surface and in the store
                for start in range(0, len(arguments), ARGUMENT_CHUNK):
                    await pace()
                    chunk = arguments[start : start + ARGUMENT_CHUNK]
                    first = start == 0
                    yield ToolCallDelta(
                        index,
                        call_id if first else None,
                        tool["name"] if first else None,
                        chunk,
                    )
                produced += len(tokens(arguments))
            yield usage()
            yield Finish()
            return

        if scenario == "refusal":
            for tok in tokens("I can't help with that."):
                await pace()
                produced += 1
                yield RefusalDelta(tok)
            yield usage()
            yield Finish()
            return

        reply = self._reply(call, text, last, count, scenario)
        for stop in req.stop or ():  # the reply up to the first stop sequence, which is left out
            reply = reply.split(stop, 1)[0] if stop else reply
        words = tokens(reply)
        for n, tok in enumerate(words):
            if scenario == "fail" and n >= max(1, len(words) // 2):
                yield usage()
                yield Failure(
                    "server_error", "echo: scripted failure (metadata echo_scenario=fail)"
                )
                return
            if budget is not None and produced >= budget:
                yield usage()
                yield Finish("max_output_tokens")
                return
            await pace()
            produced += 1
            yield TextDelta(tok)
        yield usage()
        yield Finish()

    @staticmethod
    def _reply(call: ModelCall, text: str, last: dict[str, Any], count: int, scenario: str) -> str:
        if scenario == "long":
            return " ".join(f"token{i}" for i in range(count))
        if last.get("type") == "function_call_output":
            return f"Tool output: {text}"
        fmt = call.request.text.format if call.request.text else None
        if fmt is not None and fmt.type == "json_schema":
            return orjson.dumps(value_for_schema(fmt.schema, text)).decode()
        if fmt is not None and fmt.type == "json_object":
            return orjson.dumps({"echo": text}).decode()
        return f"Echo: {text}" if text else "Echo: (no text)"
