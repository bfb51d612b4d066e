"""API keys: bearer token -> tenant, keeping only SHA-256 hashes of the keys.

SHA-256 without salt or stretching is enough because keys are long random
strings, not passwords; a key shorter than `MIN_KEY_LENGTH` is refused. A
presented token is hashed and compared with every configured hash in constant
time (`hmac.compare_digest`), so timing says nothing about which key matched.

Config entries (TOML `[[keys]]` tables or dicts), one of `key`, `key_env`,
`sha256` each:

    {"tenant": "team-a", "key_env": "TEAM_A_KEY"}   # read from the environment
    {"tenant": "team-b", "sha256": "9f86d0…"}        # only the hash in the config file
    {"tenant": "dev", "key": "…"}                    # plain (avoid in shared files)

`admin = true` on an entry lets its key read operator endpoints (`GET /metrics`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from typing import Any

MIN_KEY_LENGTH = 20


class KeyConfigError(ValueError):
    """A `keys` entry is malformed; the message names the entry."""


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured keys. With none, the server runs open (every request is tenant "")."""

    def __init__(
        self, hashes: Iterable[tuple[bytes, str]] = (), admins: Iterable[bytes] = ()
    ) -> None:
        self._hashes = list(hashes)  # (sha256 digest, tenant)
        self._admins = set(admins)  # digests of the admin keys

    @classmethod
    def from_config(
        cls, entries: Iterable[Mapping[str, Any]], environ: Mapping[str, str] = os.environ
    ) -> ApiKeys:
        hashes = []
        admins = []
        for i, entry in enumerate(entries):
            where = f"keys[{i}]"
            admin = entry.get("admin", False)
            if not isinstance(admin, bool):
                raise KeyConfigError(f"{where}: `admin` must be true or false.")
            tenant = entry.get("tenant")
            if not isinstance(tenant, str) or not tenant:
                raise KeyConfigError(f"{where}: `tenant` must be a non-empty string.")
            sources = [name for name in ("key", "key_env", "sha256") if name in entry]
            if len(sources) != 1:
                raise KeyConfigError(f"{where}: give exactly one of `key`, `key_env`, `sha256`.")
            if "sha256" in entry:
                try:
                    digest = bytes.fromhex(entry["sha256"])
                except (TypeError, ValueError):
                    digest = b""
                if len(digest) != 32:
                    raise KeyConfigError(f"{where}: `sha256` must be 64 hex digits.")
                hashes.append((digest, tenant))
                admins += [digest] if admin else []
                continue
            key = environ.get(entry["key_env"]) if "key_env" in entry else entry["key"]
            if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
                source = (
                    f"environment variable {entry['key_env']}" if "key_env" in entry else "`key`"
                )
                raise KeyConfigError(
                    f"{where}: {source} must hold a key of at least {MIN_KEY_LENGTH} characters."
                )
            hashes.append((hash_key(key), tenant))
            admins += [hash_key(key)] if admin else []
        return cls(hashes, admins)

    @property
    def open(self) -> bool:
        """True when no keys are configured."""
        return not self._hashes

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of an `Authorization` header value, or None if it is missing or wrong.
        Open mode: tenant "" for every request."""
        if self.open:
            return ""
        found = self._match(authorization)
        return None if found is None else found[1]

    def is_admin(self, authorization: str | None) -> bool | None:
        """Whether the key is an admin key (always True in open mode); None for a missing
        or wrong key."""
        if self.open:
            return True
        found = self._match(authorization)
        return None if found is None else found[0] in self._admins

    def _match(self, authorization: str | None) -> tuple[bytes, str] | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_key(token.strip())
        found = None
        for known, tenant in self._hashes:
            if hmac.compare_digest(known, digest) and found is None:
                found = (known, tenant)
        return found
