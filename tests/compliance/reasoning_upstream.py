"""A Chat Completions upstream that thinks aloud, like DeepSeek or vLLM with a reasoning parser:
every streamed answer starts with `reasoning_content` chunks; then, when the last message is
the user's and tools are offered, it calls the first function tool (its required string
arguments set to the user's text, like `echo`), otherwise it answers `Echo: <last text>`
(after a tool result: that result).

    python -m tests.compliance.reasoning_upstream --port 9002

`UpstreamThread` runs it in a thread on a free port for tests.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

REASONING = ["Let me ", "think ", "about ", "this."]


def text_of(message: dict[str, Any]) -> str:
    """A message's text: its last text part (Claude Code puts context in parts before the
    prompt)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    texts = [p.get("text", "") for p in content or [] if isinstance(p, dict)]
    return ([t for t in texts if t.strip()] or [""])[-1]


def arguments(tool: dict[str, Any], text: str) -> str:
    schema = tool["function"].get("parameters") or {}
    props = schema.get("properties") or {}
    required = [n for n in schema.get("required") or [] if props.get(n, {}).get("type") == "string"]
    return orjson.dumps({name: text for name in required}).decode()


def chunks(body: dict[str, Any]) -> Iterator[bytes]:
    head = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 0, "model": "r"}

    def frame(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + orjson.dumps({**head, "choices": choices, "usage": usage}) + b"\n\n"

    yield frame({"role": "assistant", "content": ""})
    for piece in REASONING:
        yield frame({"reasoning_content": piece})
    messages = body.get("messages") or [{}]
    last = messages[-1]
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools and last.get("role") == "user":
        call = {"index": 0, "id": "call_r1", "type": "function"}
        tool = tools[0]
        call["function"] = {
            "name": tool["function"]["name"],
            "arguments": arguments(tool, text_of(last)),
        }
        yield frame({"tool_calls": [call]})
        yield frame({}, "tool_calls")
    else:
        for word in f"Echo: {text_of(last)}".split(" "):
            yield frame({"content": word + " "})
        yield frame({}, "stop")
    usage = {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}
    usage["completion_tokens_details"] = {"reasoning_tokens": len(REASONING)}
    yield frame(None, usage=usage)
    yield b"data: [DONE]\n\n"


def make_app(seen: list[dict[str, Any]] | None = None) -> Starlette:
    """The app; every request body is appended to `seen`."""

    async def completions(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if seen is not None:
            seen.append(body)
        return StreamingResponse(chunks(body), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


class UpstreamThread:
    """The upstream served by uvicorn in a thread: `with UpstreamThread() as up: up.url`;
    `up.requests`: the request bodies it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        app = make_app(self.requests)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> UpstreamThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "upstream did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9002)
    a = p.parse_args()
    uvicorn.run(make_app(), host=a.host, port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
