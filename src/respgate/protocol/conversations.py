"""The Conversations API request bodies: decoding and validation (400 naming `param`).

`POST /v1/conversations` `{items?, metadata?}`, `POST /v1/conversations/{id}`
`{metadata}` (required; null clears it), `POST /v1/conversations/{id}/items`
`{items}`. Items are validated as `input` items are (`items[2].content`), at most
`MAX_ITEMS` a request, as OpenAI allows; metadata has OpenAI's limits.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import invalid
from .request import _check, _decode, check_metadata, normalize_input

# Items one request may add (OpenAI: "You may add up to 20 items at a time").
MAX_ITEMS = 20


class ConversationCreate(msgspec.Struct, kw_only=True):
    items: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None


class ConversationUpdate(msgspec.Struct, kw_only=True):
    metadata: dict[str, Any] | None


class ItemsCreate(msgspec.Struct, kw_only=True):
    items: list[dict[str, Any]]


_create = msgspec.json.Decoder(ConversationCreate)
_update = msgspec.json.Decoder(ConversationUpdate)
_items = msgspec.json.Decoder(ItemsCreate)


def _items_of(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if raw is None:
        return []
    _check(raw)
    if len(raw) > MAX_ITEMS:
        raise invalid(f"At most {MAX_ITEMS} items can be added at a time.", "items")
    return normalize_input(raw, "items")


def parse_conversation_create(body: bytes) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(items, metadata) of a create body; an empty body is `{}`."""
    req = _decode(_create, body or b"{}")
    check_metadata(req.metadata)
    return _items_of(req.items), dict(req.metadata or {})


def parse_conversation_update(body: bytes) -> dict[str, str]:
    """The new metadata (replacing the old; null clears it)."""
    req = _decode(_update, body)
    check_metadata(req.metadata)
    return dict(req.metadata or {})


def parse_items_create(body: bytes) -> list[dict[str, Any]]:
    items = _items_of(_decode(_items, body).items)
    if not items:
        raise invalid("`items` must hold at least one item.", "items")
    return items
