"""Gateway secrets (the seal key): the first process to ask keeps its candidate, every
later one (another replica on the same store, or the next start) gets that same value."""

from __future__ import annotations

from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from tests.store.conftest import OpenStore


async def test_first_writer_wins_across_processes(open_store: OpenStore) -> None:
    first = await open_store()
    assert await first.secret("seal_key", "key-one") == "key-one"
    if open_store.kind == "sqlite":  # type: ignore[attr-defined]
        await first.close()  # one process per SQLite directory: the next start
    second = await open_store()  # another replica's view of the same database
    assert await second.secret("seal_key", "key-two") == "key-one"
    assert await second.secret("other", "x") == "x"


async def test_replicas_on_one_store_seal_with_one_key(open_store: OpenStore) -> None:
    """Two engines started on the same database (concurrently on PostgreSQL, one after
    the other on SQLite) open each other's blobs without any key configured."""
    first = Engine(ProviderRegistry(), await open_store())
    await first.start()
    blob = first.sealer.seal("compaction", "t", {"summary": "s"})
    if open_store.kind == "sqlite":  # type: ignore[attr-defined]
        await first.shutdown(0)
        await first.store.close()  # type: ignore[union-attr]
    second = Engine(ProviderRegistry(), await open_store())
    await second.start()
    assert second.sealer.open("compaction", "t", blob) == {"summary": "s"}
    assert Engine(ProviderRegistry()).sealer.key_id != second.sealer.key_id
    for engine in (first, second):
        await engine.shutdown(0)
