"""Sealed blobs: opaque, tamper-evident `encrypted_content` that only this gateway reads.

Compaction items and reasoning carriers both travel through clients as strings
made here. A blob is

    "rg1." + base64url( header | nonce(12) | AES-256-GCM ciphertext+tag )
    header = version(1) | kind(1) | key_id(4) | tenant_tag(8)

The plaintext is zlib-compressed JSON. The AAD is the header plus the full
tenant name, so a blob opens only for the tenant it was sealed for and only
with the key that sealed it; any changed byte fails authentication. `key_id`
(from the key) and `tenant_tag` (an HMAC of the tenant under the key) are in
the clear only to tell *why* a blob does not open (another key, another
tenant, or tampering); neither reveals the key or the tenant's name.

The key is 32 bytes: `[server] seal_key` (base64), or else one generated once
and kept in the store (every replica sharing the store reads the same one),
or, without a store, one per process (blobs then die with the process).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import zlib
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "rg1."
VERSION = 1
KINDS = {"compaction": b"c", "reasoning": b"r"}
Kind = Literal["compaction", "reasoning"]
HEADER = 14  # version, kind, key_id(4), tenant_tag(8)
NONCE = 12
KEY_BYTES = 32


class SealError(ValueError):
    """A blob that does not open; `reason` is `malformed`, `kind`, `key`, `tenant` or
    `tampered`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_key() -> str:
    """A fresh key, base64 (what `[server] seal_key` takes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def decode_key(text: str) -> bytes:
    """A base64 key of exactly 32 bytes, or ValueError."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ValueError("the seal key must be base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the seal key must be {KEY_BYTES} bytes (base64), got {len(raw)}")
    return raw


class Sealer:
    """Seals and opens blobs with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the seal key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self._key = key
        self.key_id = hashlib.sha256(b"respgate seal key id" + key).digest()[:4]

    def _tenant_tag(self, tenant: str) -> bytes:
        return hmac.new(self._key, b"tenant:" + tenant.encode(), hashlib.sha256).digest()[:8]

    def seal(self, kind: Kind, tenant: str, payload: dict[str, Any]) -> str:
        header = bytes([VERSION]) + KINDS[kind] + self.key_id + self._tenant_tag(tenant)
        nonce = os.urandom(NONCE)
        plain = zlib.compress(orjson.dumps(payload))
        sealed = self._aead.encrypt(nonce, plain, header + tenant.encode())
        return PREFIX + base64.urlsafe_b64encode(header + nonce + sealed).decode().rstrip("=")

    def open(self, kind: Kind, tenant: str, blob: str) -> dict[str, Any]:
        """The payload of `blob`, or `SealError` saying why not."""
        if not blob.startswith(PREFIX):
            raise SealError("malformed", "it was not made by this gateway")
        body = blob[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise SealError("malformed", "it is not valid base64url") from None
        if len(raw) < HEADER + NONCE + 16 or raw[0] != VERSION:
            raise SealError("malformed", "it is truncated or of an unknown version")
        header, nonce, sealed = raw[:HEADER], raw[HEADER : HEADER + NONCE], raw[HEADER + NONCE :]
        if header[1:2] != KINDS[kind]:
            raise SealError("kind", f"it is not a {kind} blob")
        if header[2:6] != self.key_id:
            raise SealError("key", "it was sealed with another key")
        if not hmac.compare_digest(header[6:14], self._tenant_tag(tenant)):
            raise SealError("tenant", "it belongs to another tenant")
        try:
            plain = self._aead.decrypt(nonce, sealed, header + tenant.encode())
            payload = orjson.loads(zlib.decompress(plain))
        except (InvalidTag, zlib.error, orjson.JSONDecodeError):
            raise SealError("tampered", "it was altered") from None
        if not isinstance(payload, dict):
            raise SealError("tampered", "it was altered")
        return payload
