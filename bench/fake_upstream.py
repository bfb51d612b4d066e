"""A fake Chat Completions upstream for benchmarks.

    python bench/fake_upstream.py --port 9001 --tokens 50 --delay-ms 0

`POST /v1/chat/completions` streams `tokens` content chunks (one SSE event per
chunk, `delay_ms` apart), a `finish_reason` chunk, a usage chunk and
`data: [DONE]`, like vLLM does. Without `"stream": true` it answers one JSON
completion. The headers `x-fake-tokens` and `x-fake-delay-ms` override the
defaults per request. `GET /v1/models` lists one model.

Importable: `make_app(tokens, delay_ms)` returns the ASGI app, `chat_chunks()`
the exact byte frames, `serve()` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "fake-model"


def chat_chunks(tokens: int, model: str = MODEL) -> list[bytes]:
    """The SSE frames of one streamed completion of `tokens` tokens."""
    head = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def frame(choices: list, usage: dict | None = None) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, "usage": usage}) + b"\n\n"

    frames = [
        frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    ]
    frames += [
        frame([{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}])
        for i in range(tokens)
    ]
    frames.append(frame([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
    frames.append(frame([], usage))
    frames.append(b"data: [DONE]\n\n")
    return frames


def make_app(tokens: int = 50, delay_ms: float = 0.0) -> Starlette:
    cache: dict[int, list[bytes]] = {}

    async def completions(request: Request) -> Response:
        body = orjson.loads(await request.body())
        n = int(request.headers.get("x-fake-tokens", tokens))
        delay = float(request.headers.get("x-fake-delay-ms", delay_ms)) / 1000
        frames = cache.get(n) or cache.setdefault(n, chat_chunks(n))
        if not body.get("stream"):
            text = "".join(f"tok{i} " for i in range(n))
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n},
                }
            )

        async def stream():
            for f in frames:
                if delay:
                    await asyncio.sleep(delay)
                yield f

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def serve(port: int, tokens: int = 50, delay_ms: float = 0.0, host: str = "127.0.0.1") -> None:
    import uvicorn

    uvicorn.run(
        make_app(tokens, delay_ms), host=host, port=port, log_level="warning", access_log=False
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--tokens", type=int, default=50)
    p.add_argument("--delay-ms", type=float, default=0.0)
    a = p.parse_args(argv)
    serve(a.port, a.tokens, a.delay_ms, a.host)


if __name__ == "__main__":
    main()
