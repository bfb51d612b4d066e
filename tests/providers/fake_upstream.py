"""A fake upstream for provider tests: real HTTP/1.1 on 127.0.0.1, a random port.

It answers each request with the next queued `Reply` (the last one repeats),
records every request (path, headers, JSON body), and can inject faults:
an error status before the body, a connection dropped after N body bytes, a
stall after N bytes (held open until the client goes away, which sets
`disconnected`), a pause after N bytes, and a byte-by-byte trickle. Bodies go out chunked, so a drop
is a truncated chunked body to the client, as a real upstream crash is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(dialect: str, name: str) -> bytes:
    return (FIXTURES / dialect / f"{name}.sse").read_bytes()


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None  # close the connection after this many body bytes
    stall_after: int | None = None  # send this many bytes, then wait for the client to leave
    trickle: bool = False  # one byte per write
    pause_after: int | None = None  # send this many bytes, wait `pause` seconds, send the rest
    pause: float = 0.0
    one_write: bool = False  # the head, the body and its end in one write: read whole at once

    @classmethod
    def error(cls, status: int, message: str, **headers: str) -> Reply:
        body = orjson.dumps({"error": {"message": message, "type": "error", "code": None}})
        return cls(body, status, {"content-type": "application/json", **headers})


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


class FakeUpstream:
    """With `tls`, it serves HTTPS with that server context."""

    def __init__(self, *replies: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.tls = tls
        self.requests: list[Request] = []
        self.disconnected = asyncio.Event()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://localhost:{port}/v1"

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Request(path, headers, orjson.loads(raw) if raw else None))
        reply = self._next_reply()
        if reply.status != 200:
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} X\r\n{extra}content-length: {len(reply.body)}\r\n\r\n".encode()
                + reply.body
            )
            await writer.drain()
            return True
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        body = reply.body
        if reply.one_write:
            writer.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            await writer.drain()
            return True
        writer.write(head)
        for limit in (reply.drop_after, reply.stall_after):
            if limit is not None:
                body = body[:limit]
        step = 1 if reply.trickle else max(len(body), 1)
        pieces = [body[i : i + step] for i in range(0, len(body), step)]
        if reply.pause_after is not None:
            pieces = [body[: reply.pause_after], b"", body[reply.pause_after :]]
        for piece in pieces:
            if not piece:
                await asyncio.sleep(reply.pause)
                continue
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        if reply.drop_after is not None:
            return False
        if reply.stall_after is not None:
            await reader.read()  # returns when the client closes the connection
            self.disconnected.set()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
