"""API keys: bearer token -> tenant, keeping only SHA-256 hashes of the keys.

SHA-256 without salt or stretching is enough because keys are long random
strings, not passwords; a key shorter than `MIN_KEY_LENGTH` is refused. A
presented token is hashed and compared with every configured hash in constant
time (`hmac.compare_digest`), so timing says nothing about which key matched.

Config entries are the typed `[[keys]]` entries (`respgate.config.KeyConfig`),
one of `key`, `key_env`, `sha256` each:

    KeyConfig(tenant="team-a", key_env="TEAM_A_KEY")   # read from the environment
    KeyConfig(tenant="team-b", sha256="9f86d0…")        # only the hash in the config file
    KeyConfig(tenant="dev", key="…")                    # plain (avoid in shared files)

An entry may also set the key's own rate limits (`requests_per_minute`,
`tokens_per_minute`, `concurrent_streams`; None inherits `[limits]`, 0 = unlimited),
which override `[limits]` for that key (`respgate.limits`).

`admin = true` on an entry lets its key read operator endpoints (`GET /metrics`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

MIN_KEY_LENGTH = 20
LIMIT_NAMES = ("requests_per_minute", "tokens_per_minute", "concurrent_streams")


class KeyConfigError(ValueError):
    """A `keys` entry is malformed; the message names the entry."""


class KeyEntry(Protocol):
    """What a configured key entry offers (`respgate.config.KeyConfig`)."""

    @property
    def tenant(self) -> str: ...
    @property
    def key(self) -> str | None: ...
    @property
    def key_env(self) -> str | None: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def requests_per_minute(self) -> int | None: ...
    @property
    def tokens_per_minute(self) -> int | None: ...
    @property
    def concurrent_streams(self) -> int | None: ...
    @property
    def admin(self) -> bool: ...


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Who a request comes from: its tenant, a stable id for shared counters (the first
    16 hex digits of the key's SHA-256, the same on every replica; "" in open mode),
    the key's own limit overrides, and whether it may read operator endpoints (`admin`;
    in open mode everyone may)."""

    tenant: str
    id: str = ""
    limits: Mapping[str, int] = field(default_factory=dict)
    admin: bool = False


OPEN = ApiKey("", admin=True)


class ApiKeys:
    """The configured keys. With none, the server runs open (every request is tenant "")."""

    def __init__(self, hashes: Iterable[tuple[bytes, str | ApiKey]] = ()) -> None:
        # (sha256 digest, the key)
        self._hashes = [
            (digest, key if isinstance(key, ApiKey) else ApiKey(key, digest.hex()[:16]))
            for digest, key in hashes
        ]

    @classmethod
    def from_config(
        cls, entries: Iterable[KeyEntry], environ: Mapping[str, str] = os.environ
    ) -> ApiKeys:
        hashes = []
        for i, entry in enumerate(entries):
            where = f"keys[{i}]"
            admin = entry.admin
            if not entry.tenant:
                raise KeyConfigError(f"{where}.tenant: missing")
            sources = [s for s in (entry.key, entry.key_env, entry.sha256) if s is not None]
            if len(sources) != 1:
                raise KeyConfigError(f"{where}: give exactly one of key, key_env, sha256")
            limits = _limits(entry)
            if entry.sha256 is not None:
                try:
                    digest = bytes.fromhex(entry.sha256)
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise KeyConfigError(f"{where}.sha256: must be 64 hex digits")
                hashes.append((digest, ApiKey(entry.tenant, digest.hex()[:16], limits, admin)))
                continue
            if entry.key_env is not None:
                key = environ.get(entry.key_env)
                if not key:
                    raise KeyConfigError(
                        f"{where}.key_env: environment variable {entry.key_env} is not set"
                    )
                source = f"{where}.key_env: environment variable {entry.key_env}"
            else:
                key, source = entry.key, f"{where}.key"
            if key is None or len(key) < MIN_KEY_LENGTH:
                raise KeyConfigError(
                    f"{source} must hold a key of at least {MIN_KEY_LENGTH} characters"
                )
            digest = hash_key(key)
            hashes.append((digest, ApiKey(entry.tenant, digest.hex()[:16], limits, admin)))
        return cls(hashes)

    @property
    def open(self) -> bool:
        """True when no keys are configured."""
        return not self._hashes

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of an `Authorization` header value, or None if it is missing or wrong.
        Open mode: tenant "" for every request."""
        key = self.lookup(authorization)
        return None if key is None else key.tenant

    def lookup(self, authorization: str | None) -> ApiKey | None:
        """The key of an `Authorization` header value, or None if it is missing or wrong.
        Open mode: `OPEN` (tenant "") for every request."""
        if self.open:
            return OPEN
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_key(token.strip())
        found = None
        for known, key in self._hashes:
            if hmac.compare_digest(known, digest) and found is None:
                found = key
        return found


def _limits(entry: KeyEntry) -> dict[str, int]:
    """The entry's own limits (only those it sets; the config already checked them)."""
    return {name: value for name in LIMIT_NAMES if (value := getattr(entry, name)) is not None}
