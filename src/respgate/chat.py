"""`respgate chat`: a terminal client for any Responses endpoint.

Text is printed as it arrives, reasoning dimmed, each tool call with its
arguments as they stream; usage and the final status come at the end. Without
a PROMPT it is an interactive loop whose turns are chained with
`previous_response_id` (falling back to resending the conversation when the
server keeps no responses), with line editing and history (stdlib `readline`)
and the commands in `COMMANDS`. `--raw` prints the events themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
from rich.console import Console

from .client import Client, Event, ResponsesError, Result, UnknownEvent
from .client import events as ev
from .endpoint import api_key, endpoint_problem

Json = dict[str, Any]


class Renderer:
    """Draws one response's events on a console; pass it as `on_event`."""

    def __init__(self, console: Console, *, raw: bool = False) -> None:
        self.console = console
        self.raw = raw
        self._block: tuple[str, int] | None = None  # (kind, output_index) being printed

    def __call__(self, event: Event) -> None:
        if self.raw:
            data = event.data if isinstance(event, UnknownEvent) else msgspec.to_builtins(event)
            line = data if isinstance(data, str) else msgspec.json.encode(data).decode()
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        if isinstance(event, ev.OutputTextDelta):
            self._write("text", event.output_index, event.delta)
        elif isinstance(event, ev.RefusalDelta):
            self._write("refusal", event.output_index, event.delta, "red")
        elif isinstance(event, ev.ReasoningSummaryTextDelta | ev.ReasoningTextDelta):
            self._write("reasoning", event.output_index, event.delta, "dim italic")
        elif isinstance(event, ev.OutputItemAdded) and event.item.get("type") == "function_call":
            self._write("tool", event.output_index, f"→ {event.item.get('name')}(", "cyan")
            self._write("tool", event.output_index, event.item.get("arguments") or "", "cyan")
        elif isinstance(event, ev.FunctionCallArgumentsDelta):
            self._write("tool", event.output_index, event.delta, "cyan")
        elif isinstance(event, ev.OutputItemDone) and event.item.get("type") == "function_call":
            self._write("tool", event.output_index, ")", "cyan")

    def _write(self, kind: str, output_index: int, text: str, style: str | None = None) -> None:
        if self._block != (kind, output_index):
            if self._block is not None:
                self.console.print()
            self._block = (kind, output_index)
        self.console.print(text, end="", style=style, markup=False, highlight=False, soft_wrap=True)

    def finish(self, result: Result) -> None:
        """The status line: status (and why, if incomplete), usage, response id."""
        if self._block is not None:
            self.console.print()
            self._block = None
        if self.raw:
            return
        parts = [result.status or "?"]
        if result.incomplete_details:
            parts[0] += f" ({result.incomplete_details.get('reason')})"
        usage = result.usage
        if usage:
            reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            tokens = f"{usage.get('input_tokens')} in, {usage.get('output_tokens')} out"
            parts.append(tokens + (f" ({reasoning} reasoning)" if reasoning else "") + " tokens")
        parts.append(result.id)
        style = "green" if result.status == "completed" else "yellow"
        self.console.print(" · ".join(parts), style=f"dim {style}", markup=False, highlight=False)
        for problem in result.mismatches:
            self.console.print(f"stream/snapshot mismatch: {problem}", style="yellow", markup=False)

    def error(self, exc: ResponsesError) -> None:
        if self._block is not None:
            self.console.print()
            self._block = None
        self.console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)


class Chat:
    """A conversation: each `turn()` streams one response and chains the next to it."""

    def __init__(
        self, client: Client, console: Console, *, model: str, raw: bool = False, **options: Any
    ) -> None:
        self.client = client
        self.console = console
        self.model = model
        self.raw = raw
        self.options = options  # extra request fields, e.g. instructions
        self.previous_response_id: str | None = None
        self.history: list[
            Json
        ] = []  # the conversation as input items, for servers that store nothing
        self.chained = True  # False once the server refused previous_response_id

    def reset(self) -> None:
        """Start a new conversation (the next turn has no `previous_response_id`)."""
        self.previous_response_id = None
        self.history = []

    def turn(self, prompt: str) -> Result | None:
        message = {"role": "user", "content": prompt}
        body: Json = {"input": [*self.history, message]}
        if self.chained:
            body = {"input": [message]}
            if self.previous_response_id:
                body["previous_response_id"] = self.previous_response_id
        renderer = Renderer(self.console, raw=self.raw)
        try:
            result = self.client.stream(
                model=self.model, on_event=renderer, **body, **self.options
            ).final()
        except ResponsesError as exc:
            if self.chained and exc.code == "previous_response_not_found" and self.history:
                self.console.print(
                    "(the server keeps no responses: resending the conversation)", style="dim"
                )
                self.chained = False
                return self.turn(prompt)
            renderer.error(exc)
            return None
        renderer.finish(result)
        self.previous_response_id = result.id
        self.history += [message, *result.output]
        return result


COMMANDS = {
    "/help": "this list",
    "/reset": "start a new conversation",
    "/model NAME": "switch to model NAME (without NAME: show the current one)",
    "/quit": "leave (also /exit, Ctrl-D)",
}


def command(chat: Chat, line: str) -> bool:
    """Run one /command; False when the loop should end."""
    name, _, argument = line.strip().partition(" ")
    argument = argument.strip()
    say = functools.partial(chat.console.print, style="dim", markup=False, highlight=False)
    if name in ("/quit", "/exit"):
        return False
    if name == "/help":
        for usage, what in COMMANDS.items():
            say(f"{usage:<12} {what}")
    elif name == "/reset":
        chat.reset()
        say("(new conversation)")
    elif name == "/model":
        if argument:
            chat.model = argument
        say(f"model: {chat.model}")
    else:
        say(f"unknown command {name}; /help lists them")
    return True


@contextlib.contextmanager
def line_editing(path: str | None) -> Iterator[None]:
    """Line editing and a persistent history for `input()` when a terminal reads it."""
    try:
        import readline
    except ImportError:  # not every platform has it; input() still works
        yield
        return
    if path:
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
    try:
        yield
    finally:
        if path:
            readline.set_history_length(1000)
            with contextlib.suppress(OSError):
                readline.write_history_file(path)


def history_file(environ: Any = os.environ) -> str | None:
    """`RESPGATE_CHAT_HISTORY` (empty: none), else `~/.respgate_chat_history`."""
    path = environ.get("RESPGATE_CHAT_HISTORY")
    if path is None:
        path = os.path.join(os.path.expanduser("~"), ".respgate_chat_history")
    return path or None


def run(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    problem = endpoint_problem(args.url)
    if problem:
        print(f"respgate chat: {problem}", file=sys.stderr)
        return 2
    console = Console(highlight=False)
    options = {"instructions": args.instructions} if args.instructions else {}
    with Client(args.url, api_key=api_key(args.key)) as client:
        chat = Chat(client, console, model=args.model, raw=args.raw, **options)
        if args.prompt:
            return 0 if chat.turn(" ".join(args.prompt)) is not None else 1
        console.print(
            f"respgate chat · {args.model} at {args.url} · /help for commands, Ctrl-D to leave",
            style="dim",
            markup=False,
        )
        with line_editing(history_file() if sys.stdin.isatty() else None):
            while True:
                try:
                    line = input("> ")
                except (EOFError, KeyboardInterrupt):
                    console.print()
                    return 0
                if line.strip().startswith("/"):
                    if not command(chat, line):
                        return 0
                elif line.strip():
                    try:
                        chat.turn(line)
                    except KeyboardInterrupt:  # stop this answer, keep the conversation
                        console.print("\n(interrupted)", style="dim")


def add_parser(sub: Any) -> None:
    """Register `respgate chat` on the CLI's subparsers."""
    p = sub.add_parser("chat", help="chat with a Responses endpoint in the terminal")
    p.add_argument("prompt", nargs="*", help="one prompt (no prompt: interactive)")
    p.add_argument("--url", default=os.environ.get("RESPGATE_URL", "http://127.0.0.1:8000/v1"))
    p.add_argument("--model", default="echo")
    p.add_argument(
        "--key", default=None, help="API key (default: $RESPGATE_API_KEY, else $OPENAI_API_KEY)"
    )
    p.add_argument("--instructions", default=None, help="a system prompt")
    p.add_argument("--raw", action="store_true", help="print the events themselves")
    p.set_defaults(func=run)
