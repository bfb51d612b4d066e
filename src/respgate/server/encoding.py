"""Compressed request bodies: `Content-Encoding: gzip`, `deflate` or `zstd`.

Codex compresses its `/v1/responses` bodies with zstd when it talks to the ChatGPT
backend, and a gateway in that backend's place must read them; other clients gzip large
bodies. The body is decoded before it is parsed, in bounded steps: what it decodes to is
held to the same `max_body_bytes` as a plain body (413), so a small body that would
expand to gigabytes costs no more than the limit. A coding respgate does not know is a
415, a body that does not decode a 400; both name the header as `param`."""

from __future__ import annotations

import sys
import zlib
from typing import Protocol

from ..protocol.errors import ApiError, quote

if sys.version_info >= (3, 14):
    from compression.zstd import ZstdDecompressor, ZstdError
else:
    from backports.zstd import ZstdDecompressor, ZstdError

HEADER = "content-encoding"
CODINGS = ("gzip", "deflate", "zstd")


class _Decompressor(Protocol):
    """What zlib's and zstd's streaming decompressors have in common."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _decompressor(coding: str) -> _Decompressor:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":  # the zlib format (RFC 9110), or a gzip stream sent as it
        return zlib.decompressobj(32 + zlib.MAX_WBITS)
    if coding == "zstd":
        return ZstdDecompressor()
    raise ApiError(
        415,
        f"Unsupported Content-Encoding {quote(coding)}; "
        f"send the body as it is or encoded with one of {', '.join(CODINGS)}.",
        code="unsupported_content_encoding",
        param=HEADER,
    )


def decoded(body: bytes, header: str | None, limit: int) -> bytes:
    """`body` decoded as the `Content-Encoding` header says (None or `identity`: as it is);
    at most `limit` bytes of it (413 beyond)."""
    coding = (header or "").strip().lower()
    if coding in ("", "identity"):
        return body
    decompressor = _decompressor(coding)
    try:
        out = decompressor.decompress(body, limit + 1)
    except (zlib.error, ZstdError) as exc:
        raise _undecodable(coding, str(exc)) from None
    if len(out) > limit:
        raise ApiError(
            413,
            f"The request body exceeds {limit} bytes once decoded ({coding}).",
            code="request_too_large",
        )
    if not decompressor.eof:
        raise _undecodable(coding, "the compressed data ends early")
    if decompressor.unused_data:
        raise _undecodable(coding, "data follows the end of the compressed stream")
    return out


def _undecodable(coding: str, why: str) -> ApiError:
    return ApiError(
        400,
        f"The request body could not be decoded as Content-Encoding {coding}: {why}.",
        code="invalid_body",
        param=HEADER,
    )
