"""An in-memory ResponseStore: just enough for previous_response_id in tests."""

from __future__ import annotations

from typing import Any

from respgate.store.base import StoredResponse


class MemoryStore:
    def __init__(self) -> None:
        self.records: dict[str, StoredResponse] = {}

    async def save(self, record: StoredResponse) -> None:
        self.records[record.response["id"]] = record

    async def get(self, response_id: str, tenant: str) -> dict[str, Any] | None:
        record = self.records.get(response_id)
        return record.response if record else None

    async def load_chain(self, response_id: str, tenant: str) -> list[dict[str, Any]] | None:
        record = self.records.get(response_id)
        if record is None:
            return None
        previous = record.response.get("previous_response_id")
        earlier = await self.load_chain(previous, tenant) if previous else []
        return [*(earlier or []), *record.input_items, *record.response["output"]]

    async def delete(self, response_id: str, tenant: str) -> bool:
        return self.records.pop(response_id, None) is not None

    async def close(self) -> None:
        pass
