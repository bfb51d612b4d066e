"""The `ResponseStore` interface (implementations: `sqlite`, `postgres`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class StoredResponse:
    """What is persisted for one response (`store: true`)."""

    response: dict[str, Any]  # the Response object as last emitted
    input_items: list[dict[str, Any]]  # this request's input items, normalised, with ids
    tenant: str = ""


class ResponseStore(Protocol):
    async def save(self, record: StoredResponse) -> None:
        """Insert or replace; committed when this returns."""

    async def get(self, response_id: str, tenant: str) -> dict[str, Any] | None: ...

    async def load_chain(self, response_id: str, tenant: str) -> list[dict[str, Any]] | None:
        """Every input and output item of the chain ending at `response_id`, oldest first;
        None if the id is unknown, deleted or another tenant's."""

    async def delete(self, response_id: str, tenant: str) -> bool: ...

    async def close(self) -> None: ...
