"""The operations on stored responses: retrieve, replay a background one, delete, list,
input items, metadata, cancel."""

from __future__ import annotations

from typing import Any

from ..protocol.errors import ApiError, invalid, not_found, quote
from ..protocol.items import canonical, shown, shown_response
from ..store.base import ResponseQuery, ResponseStore
from .run import Replay, Run


class StoredResponses:
    """`Engine`'s stored-response operations (a mixin: `Engine` holds `store` and the
    background runs)."""

    store: ResponseStore | None
    background: dict[str, Run]

    def _stored(self) -> ResponseStore:
        if self.store is None:
            raise not_found("No responses are stored by this gateway.", "response_not_found")
        return self.store

    @staticmethod
    def _missing(response_id: str) -> ApiError:
        return not_found(f"Response with id {quote(response_id)} not found.", "response_not_found")

    async def retrieve(
        self, response_id: str, *, tenant: str = "", include: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """A stored Response, reasoning `encrypted_content` shown as `include` asks."""
        response = await self._stored().get(response_id, tenant)
        if response is None:
            raise self._missing(response_id)
        return shown_response(response, include)

    async def replay(
        self, response_id: str, *, tenant: str = "", starting_after: int | None = None
    ) -> Replay:
        """A background response's events after `starting_after`, then live until the end."""
        response = await self.retrieve(response_id, tenant=tenant)
        if not response.get("background"):
            raise invalid("Only background responses can be streamed again.", "stream")
        return Replay(self._stored().follow(response_id, tenant, starting_after))

    async def delete(self, response_id: str, *, tenant: str = "") -> dict[str, Any]:
        if not await self._stored().delete(response_id, tenant):
            raise self._missing(response_id)
        run = self.background.get(response_id)
        if run is not None:
            run.abort("cancelled", "The response was deleted.")
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def input_items(
        self,
        response_id: str,
        *,
        tenant: str = "",
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        include: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """A page of a stored response's input items, as OpenAI lists them (canonical, and
        shown as `include` asks: `protocol.items`)."""
        page = await self._stored().input_items(
            response_id, tenant, limit=limit, order=order, after=after
        )  # type: ignore[arg-type]
        if page is None:
            raise self._missing(response_id)
        page.data = [shown(canonical(item), include) for item in page.data]
        return page.wire()

    async def list_responses(self, tenant: str | None, query: ResponseQuery) -> dict[str, Any]:
        """`GET /v1/responses`: a page of stored responses (`tenant` None: every tenant's)."""
        return (await self._stored().list_responses(tenant, query)).wire()

    async def update_metadata(
        self, response_id: str, metadata: dict[str, str], *, tenant: str = ""
    ) -> dict[str, Any]:
        """Replace a stored response's `metadata`; the updated Response."""
        response = await self._stored().update_metadata(response_id, tenant, metadata)
        if response is None:
            raise self._missing(response_id)
        return response

    async def cancel(self, response_id: str, *, tenant: str = "") -> dict[str, Any]:
        """Cancel a background response (on whichever process runs it: that process's next
        log write is refused and it stops); here, its run stops at once."""
        response = await self._stored().cancel(response_id, tenant)
        if response is None:
            raise self._missing(response_id)
        run = self.background.get(response_id)
        if run is not None:
            run.abort("cancelled", "The response was cancelled.")
        return response
