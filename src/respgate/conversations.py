"""The Conversations API over the store: what the engine and the routes call.

A conversation is an ordered list of canonical items (`protocol.items.canonical`,
each with an id) plus metadata, kept until it is deleted (no retention applies).
`POST /v1/responses` with `conversation` reads its items as the context before the
request's input (`Engine.context`) and appends the turn's input and output at the
run's terminal step, when the response ended `completed` or `incomplete`
(`Conversations.append_turn`); a failed or cancelled turn leaves the conversation as
it was, so the same request can be sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .protocol.errors import ApiError, invalid, not_found, quote
from .protocol.ids import new_id
from .protocol.items import canonical, shown
from .protocol.response import list_object
from .store.base import ListQuery, ResponseStore, with_item_ids

log = logging.getLogger("respgate.conversations")

Item = dict[str, Any]

# Response statuses whose input and output join the conversation.
APPENDED_STATUSES = ("completed", "incomplete")


def conversation_not_found(conversation_id: str, param: str | None = None) -> ApiError:
    return not_found(
        f"Conversation with id {quote(conversation_id)} not found.",
        "conversation_not_found",
        param,
    )


def stored_items(items: Sequence[Item]) -> list[Item]:
    """Items as a conversation keeps them: canonical, each with an id."""
    return [canonical(item) for item in with_item_ids(items)]


class Conversations:
    """Conversation operations for one tenant at a time. `store()` gives the engine's
    store when it is open (None: nothing is stored, every conversation is unknown)."""

    def __init__(
        self, store: Callable[[], ResponseStore | None], clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._clock = clock

    def _stored(self, conversation_id: str | None = None) -> ResponseStore:
        store = self._store()
        if store is None:
            if conversation_id is not None:
                raise conversation_not_found(conversation_id)
            raise invalid("Conversations need a configured store.", None)
        return store

    async def create(self, items: Sequence[Item], metadata: dict[str, str], tenant: str) -> Item:
        conversation = {
            "id": new_id("conversation"),
            "object": "conversation",
            "created_at": int(self._clock()),
            "metadata": metadata,
        }
        await self._stored().create_conversation(conversation, stored_items(items), tenant)
        return conversation

    async def retrieve(self, conversation_id: str, tenant: str) -> Item:
        found = await self._stored(conversation_id).get_conversation(conversation_id, tenant)
        if found is None:
            raise conversation_not_found(conversation_id)
        return found

    async def list_conversations(self, tenant: str | None, query: ListQuery) -> Item:
        """`GET /v1/conversations`: a page of conversations (`tenant` None: every tenant's)."""
        return (await self._stored().list_conversations(tenant, query)).wire()

    async def update(self, conversation_id: str, tenant: str, metadata: dict[str, str]) -> Item:
        store = self._stored(conversation_id)
        found = await store.update_conversation(conversation_id, tenant, metadata)
        if found is None:
            raise conversation_not_found(conversation_id)
        return found

    async def delete(self, conversation_id: str, tenant: str) -> Item:
        if not await self._stored(conversation_id).delete_conversation(conversation_id, tenant):
            raise conversation_not_found(conversation_id)
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    async def add_items(
        self, conversation_id: str, tenant: str, items: Sequence[Item], include: frozenset[str]
    ) -> dict[str, Any]:
        store = self._stored(conversation_id)
        added = await store.add_conversation_items(conversation_id, tenant, stored_items(items))
        if added is None:
            raise conversation_not_found(conversation_id)
        return list_object([shown(item, include) for item in added], has_more=False)

    async def list_items(
        self,
        conversation_id: str,
        tenant: str,
        *,
        limit: int,
        order: str,
        after: str | None,
        include: frozenset[str],
    ) -> dict[str, Any]:
        page = await self._stored(conversation_id).list_conversation_items(
            conversation_id,
            tenant,
            limit=limit,
            order=order,
            after=after,  # type: ignore[arg-type]
        )
        if page is None:
            raise conversation_not_found(conversation_id)
        return list_object([shown(item, include) for item in page.data], page.has_more)

    async def retrieve_item(
        self, conversation_id: str, item_id: str, tenant: str, include: frozenset[str]
    ) -> Item:
        store = self._stored(conversation_id)
        conversation, item = await store.get_conversation_item(conversation_id, item_id, tenant)
        if conversation is None:
            raise conversation_not_found(conversation_id)
        if item is None:
            raise self._item_missing(item_id)
        return shown(item, include)

    async def delete_item(self, conversation_id: str, item_id: str, tenant: str) -> Item:
        """Delete one item; answers the Conversation object, as OpenAI does."""
        store = self._stored(conversation_id)
        conversation, deleted = await store.delete_conversation_item(
            conversation_id, item_id, tenant
        )
        if conversation is None:
            raise conversation_not_found(conversation_id)
        if not deleted:
            raise self._item_missing(item_id)
        return conversation

    @staticmethod
    def _item_missing(item_id: str) -> ApiError:
        return not_found(f"Item with id {quote(item_id)} not found.", "item_not_found")

    # ------------------------------------------------------------ responses in a conversation

    async def context(self, conversation_id: str, tenant: str, items: list[Item]) -> list[Item]:
        """The conversation's items, for a response whose input is `items` (which get their
        ids here, the ones they keep in the response and the conversation). 404 naming
        `conversation` if it is unknown; 400 if an input item has an id it already holds."""
        store = self._store()
        found = None if store is None else await store.conversation_items(conversation_id, tenant)
        if found is None:
            raise conversation_not_found(conversation_id, "conversation")
        held = {item["id"] for item in found}
        for index, item in enumerate(items):
            if item.get("id") in held:
                raise invalid(
                    f"Duplicate item found with id {quote(item['id'])}: the conversation "
                    "already holds it.",
                    f"input[{index}].id",
                )
        items[:] = with_item_ids(items)
        return found

    async def append_turn(
        self, conversation_id: str, tenant: str, inputs: Sequence[Item], response: Item
    ) -> None:
        """Append a finished response's input and output (the run's terminal step)."""
        if response["status"] not in APPENDED_STATUSES:
            return
        store = self._store()
        if store is None:
            return
        items = stored_items([*inputs, *response.get("output", [])])
        added = await store.add_conversation_items(conversation_id, tenant, items, skip_known=True)
        if added is None:
            log.warning(
                "response %s: conversation %s was deleted meanwhile; its turn is not appended",
                response["id"],
                conversation_id,
            )
