"""Sealed blobs: they open only for the tenant, kind and key they were made with, and any
changed byte is caught."""

from __future__ import annotations

import base64
import os

import pytest

from respgate.seal import PREFIX, Sealer, SealError, decode_key, new_key


def _flip(blob: str, index: int) -> str:
    body = blob[len(PREFIX) :]
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[index] ^= 0x01
    return PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_round_trip_and_opacity() -> None:
    sealer = Sealer(os.urandom(32))
    blob = sealer.seal("compaction", "team-a", {"summary": "launch on Tuesday"})
    assert blob.startswith(PREFIX)
    assert "Tuesday" not in blob and "launch" not in base64.urlsafe_b64decode(
        blob[4:] + "=="
    ).decode("latin-1")
    assert sealer.open("compaction", "team-a", blob) == {"summary": "launch on Tuesday"}
    # a new nonce every time: the same payload never seals to the same blob
    assert sealer.seal("compaction", "team-a", {"summary": "x"}) != sealer.seal(
        "compaction", "team-a", {"summary": "x"}
    )


def test_every_changed_byte_is_caught() -> None:
    sealer = Sealer(os.urandom(32))
    blob = sealer.seal("reasoning", "t", {"provider": "p", "opaque": "sig"})
    length = len(base64.urlsafe_b64decode(blob[4:] + "=" * (-len(blob[4:]) % 4)))
    for index in range(length):
        with pytest.raises(SealError):
            sealer.open("reasoning", "t", _flip(blob, index))


@pytest.mark.parametrize(
    ("blob_of", "reason"),
    [
        (lambda s, o: s.seal("compaction", "other-tenant", {}), "tenant"),
        (lambda s, o: o.seal("compaction", "t", {}), "key"),
        (lambda s, o: s.seal("reasoning", "t", {}), "kind"),
        (lambda s, o: "gAAAAB-someone-elses", "malformed"),
        (lambda s, o: PREFIX + "!!!", "malformed"),
        (lambda s, o: PREFIX + "AQ", "malformed"),
    ],
)
def test_why_a_blob_does_not_open(blob_of, reason: str) -> None:
    sealer, other = Sealer(os.urandom(32)), Sealer(os.urandom(32))
    with pytest.raises(SealError) as caught:
        sealer.open("compaction", "t", blob_of(sealer, other))
    assert caught.value.reason == reason


def test_keys_are_32_bytes_of_base64() -> None:
    assert len(decode_key(new_key())) == 32
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            decode_key(bad)
