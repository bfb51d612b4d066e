"""Gateway secrets (the seal key): the first process to ask keeps its candidate, every
later one (another replica on the same store, or the next start) gets that same value."""

from __future__ import annotations

from tests.store.conftest import OpenStore


async def test_first_writer_wins_across_processes(open_store: OpenStore) -> None:
    first = await open_store()
    assert await first.secret("seal_key", "key-one") == "key-one"
    if open_store.kind == "sqlite":  # type: ignore[attr-defined]
        await first.close()  # one process per SQLite directory: the next start
    second = await open_store()  # another replica's view of the same database
    assert await second.secret("seal_key", "key-two") == "key-one"
    assert await second.secret("other", "x") == "x"
