"""Object ids: unguessable, sorted by the second they were minted, never shared with a
forked worker."""

from __future__ import annotations

import os
import re

import pytest

from respgate.protocol import ids


def test_an_id_is_its_prefix_the_minting_second_and_128_random_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids.time, "time", lambda: 1_764_590_400.7)
    minted = ids.new_id("response")
    assert re.fullmatch(r"resp_[0-9a-f]{40}", minted)
    assert minted[5:13] == f"{1_764_590_400:08x}"
    many = {ids.new_id("message") for _ in range(2000)}  # crosses several urandom blocks
    assert len(many) == 2000
    assert len({m[12:] for m in many}) == 2000  # the random parts differ, not only ids


def test_later_ids_sort_after_earlier_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    minted = []
    for second in (1_700_000_000, 1_700_000_001, 1_800_000_000):
        monkeypatch.setattr(ids.time, "time", lambda s=second: s)
        minted += [ids.new_id("response") for _ in range(50)]
    for earlier, later in zip(minted[:50], minted[50:100], strict=True):
        assert earlier < later
    assert max(minted[:100]) < min(minted[100:])


def test_a_forked_child_draws_its_own_random_bits() -> None:
    ids.random_hex()  # the parent holds a block it has only begun to use
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next draw, sent to the parent
        os.write(write, ids.random_hex().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != ids.random_hex()  # without the reset, both draw the same next slice
