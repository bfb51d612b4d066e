"""The `ResponseStore` interface (implementations: `sqlite`, `postgres`).

One record per stored response: the Response object, this request's input
items, its output items, its tenant, timestamps and, for background
responses, an append-only event log. Every method that takes a `tenant` treats
another tenant's response exactly like an id that never existed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..protocol.errors import invalid
from ..protocol.ids import PREFIXES, mint
from ..protocol.response import list_object

# Statuses of a response that is still being generated; every other status is final.
ACTIVE_STATUSES = ("queued", "in_progress")

# The error a response gets when the process that generated it died.
ORPHANED_ERROR = {
    "code": "server_error",
    "message": "The server stopped while generating this response.",
}


@dataclass(slots=True)
class StoredResponse:
    """What is persisted for one response (`store: true`).

    `response` is the Response object as last emitted: its `status`, `output`
    (the output items), `usage`, `background`, `previous_response_id` and
    `created_at` are read from it. `input_items` are this request's input
    items, normalised; `save` gives every item without an `id` a fresh one.
    """

    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    tenant: str = ""


@dataclass(slots=True)
class Chain:
    """What `previous_response_id` continues (`load_chain`): the `status` of the response
    it names, and every input and output item of the chain ending there, oldest first;
    `items` is None when a response before it is missing (deleted, expired, another
    tenant's): the chain is not found rather than truncated."""

    status: str
    items: list[dict[str, Any]] | None


@dataclass(slots=True)
class UsageRecord:
    """One finished response's usage (`usage_records` table); `cost` in USD, None when
    the model has no price. `created_at`: when it finished (Unix seconds)."""

    response_id: str
    tenant: str
    model: str
    provider: str | None
    upstream_model: str | None
    transport: str
    status: str | None
    created_at: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: float | None


@dataclass(slots=True)
class UsageTotal:
    """Usage summed per tenant and model (`respgate usage`); `cost` None when no
    response of the group had a price."""

    tenant: str
    model: str
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: float | None


@dataclass(slots=True)
class ItemPage:
    """One page of items (`GET /v1/responses/{id}/input_items`, an `ItemListResource`;
    `GET /v1/conversations/{id}/items`, a `ConversationItemList`)."""

    data: list[dict[str, Any]]
    has_more: bool

    @property
    def first_id(self) -> str | None:
        return self.data[0]["id"] if self.data else None

    @property
    def last_id(self) -> str | None:
        return self.data[-1]["id"] if self.data else None

    def wire(self) -> dict[str, Any]:
        return list_object(self.data, self.has_more)


def check_page(limit: int, order: str) -> None:
    """A list page's `limit` (1-100) and `order` ("asc" or "desc"), or a 400 naming it."""
    if not 1 <= limit <= 100:
        raise invalid("`limit` must be between 1 and 100.", "limit")
    if order not in ("asc", "desc"):
        raise invalid("`order` must be 'asc' or 'desc'.", "order")


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A page of a list (`GET /v1/conversations`): newest first unless `order` is "asc",
    after the record `after`, created in `created_after` <= created_at < `created_before`
    (Unix seconds)."""

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    created_after: int | None = None
    created_before: int | None = None


@dataclass(frozen=True, slots=True)
class ResponseQuery(ListQuery):
    """A page of stored responses (`GET /v1/responses`), also filtered by `model` and
    `status`, by the inbound `surface` that made them (`GET /v1/chat/completions`: the
    Response's `surface` field) and by `metadata` pairs (every one must match);
    `with_output`: each Response with its `output` items."""

    model: str | None = None
    status: str | None = None
    surface: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    with_output: bool = False


class ResponseStore(Protocol):
    """Durable response state. Every write is committed when its call returns."""

    async def save(self, record: StoredResponse, *, durable: bool = True) -> bool:
        """Create the record, or update it while it is still queued/in progress
        (Response object and output items; input items are written once).
        False if the response already reached a final status (e.g. cancelled).
        `durable=False`: committed, and kept if the process dies, but not flushed to disk
        (a power loss may take it): for a record a durable save supersedes soon (a
        streaming response's in_progress record); the next durable write flushes it."""

    async def get(self, response_id: str, tenant: str) -> dict[str, Any] | None:
        """The Response object, or None."""

    async def load_chain(self, response_id: str, tenant: str) -> Chain | None:
        """The chain ending at `response_id` with that response's status, in one read;
        None if the id is unknown, deleted, expired or another tenant's."""

    async def get_item(self, item_id: str, tenant: str) -> dict[str, Any] | None:
        """The most recently stored input or output item with this id, else a conversation's
        item with this id (`item_reference`)."""

    async def input_items(
        self,
        response_id: str,
        tenant: str,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        """A page of the response's input items, or None for an unknown id."""

    async def list_responses(
        self, tenant: str | None, query: ResponseQuery | None = None
    ) -> ItemPage:
        """A page of Response objects without `output` (`GET /v1/responses` has no room for
        it; `get` brings it) unless `query.with_output`. `tenant` None: every tenant's, each with its `tenant`."""

    async def update_metadata(
        self, response_id: str, tenant: str, metadata: dict[str, str]
    ) -> dict[str, Any] | None:
        """Replace a stored response's `metadata`; the updated Response, or None."""

    async def list_conversations(self, tenant: str | None, query: ListQuery) -> ItemPage:
        """A page of Conversation objects (`tenant` None: every tenant's, each with its
        `tenant`)."""

    async def delete(self, response_id: str, tenant: str) -> bool:
        """Delete the record, its items and its event log. False if there was none."""

    async def append_events(self, response_id: str, events: Sequence[dict[str, Any]]) -> bool:
        """Append events (each with its `sequence_number`) to the response's log.
        An event that carries a `response` also updates the stored Response (status,
        object, and output items). False, with nothing written, if the response is no
        longer queued/in progress (cancelled, failed by recovery, deleted): stop."""

    def follow(
        self, response_id: str, tenant: str, starting_after: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The logged events after `starting_after`, then live ones, ending after the
        terminal event (or at once if the response is unknown or already final and
        fully replayed). Never waits on a producer that is dead."""

    async def cancel(self, response_id: str, tenant: str) -> dict[str, Any] | None:
        """Cancel a queued/in-progress background response: status `cancelled` and a
        terminal event in its log. Idempotent for a cancelled one. None if unknown;
        `ApiError(400)` if not a background response or already final otherwise."""

    async def recover(self) -> list[str]:
        """Mark every queued/in-progress response whose producing process is dead as
        `failed`, with a terminal event in its log. Returns their ids."""

    async def expire(self) -> int:
        """Delete final background responses (and logs) past their retention; returns how many."""

    async def record_usage(self, records: Sequence[UsageRecord]) -> None:
        """Append usage records (one transaction; a response already recorded is skipped)."""

    async def usage(self, since: int | None = None, tenant: str | None = None) -> list[UsageTotal]:
        """Usage per tenant and model of responses finished at or after `since`."""

    # Conversations (the Conversations API). Another tenant's conversation is one that
    # never existed; a conversation's items are its own copies (deleting a response
    # leaves them, deleting the conversation leaves its responses).

    async def create_conversation(
        self, conversation: dict[str, Any], items: Sequence[dict[str, Any]], tenant: str
    ) -> None:
        """Store a new Conversation object (`id`, `created_at`, `metadata`) with its first
        items (each with its `id`; a duplicate id is a 400 naming `items[i].id`)."""

    async def get_conversation(self, conversation_id: str, tenant: str) -> dict[str, Any] | None:
        """The Conversation object, or None."""

    async def update_conversation(
        self, conversation_id: str, tenant: str, metadata: dict[str, str]
    ) -> dict[str, Any] | None:
        """Replace the metadata; the updated Conversation object, or None."""

    async def delete_conversation(self, conversation_id: str, tenant: str) -> bool:
        """Delete the conversation and its items. False if there was none."""

    async def add_conversation_items(
        self,
        conversation_id: str,
        tenant: str,
        items: Sequence[dict[str, Any]],
        *,
        skip_known: bool = False,
    ) -> list[dict[str, Any]] | None:
        """Append items (each with its `id`) in one transaction; the items added, or None
        for an unknown conversation. An id the conversation already holds is a 400 naming
        `items[i].id`, or with `skip_known` that item is left out."""

    async def conversation_items(
        self, conversation_id: str, tenant: str
    ) -> list[dict[str, Any]] | None:
        """Every item of the conversation, oldest first, or None for an unknown one."""

    async def list_conversation_items(
        self,
        conversation_id: str,
        tenant: str,
        *,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> ItemPage | None:
        """A page of the conversation's items, or None for an unknown conversation."""

    async def get_conversation_item(
        self, conversation_id: str, item_id: str, tenant: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the Conversation object or None, the item or None)."""

    async def delete_conversation_item(
        self, conversation_id: str, item_id: str, tenant: str
    ) -> tuple[dict[str, Any] | None, bool]:
        """(the Conversation object or None, whether the item was there and is deleted)."""

    async def secret(self, name: str, candidate: str) -> str:
        """The gateway secret `name` (the seal key); `candidate` is kept and returned
        when there is none yet. Every process sharing the store gets the same value."""

    async def close(self) -> None: ...


def item_id_for(item_type: str) -> str:
    """A fresh id for an item of `item_type` (`msg_…`, `fc_…`, `rs_…`; `item_…` otherwise)."""
    return mint(PREFIXES.get(item_type, "item"))


def with_item_ids(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items, each with an `id` (a copy with a fresh id where one was missing)."""
    return [item if item.get("id") else {**item, "id": item_id_for(item["type"])} for item in items]
