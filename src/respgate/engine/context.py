"""The model context of a request: the previous chain or the conversation, `item_reference`s
resolved, sealed items opened (`carry`), and the call that writes a compaction summary."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from .. import carry
from ..conversations import Conversations
from ..protocol.errors import ApiError, invalid, not_found, previous_response_not_found, quote
from ..protocol.request import CreateRequest
from ..providers.base import ModelCall
from ..seal import Sealer, decode_key, new_key
from ..store.base import ACTIVE_STATUSES, ResponseStore

log = logging.getLogger("respgate.engine")


class ContextLoading:
    """`Engine`'s context loading (a mixin: `Engine` holds the state named below)."""

    store: ResponseStore | None
    conversations: Conversations
    sealer: Sealer
    _seal_key_pending: bool

    async def _load_seal_key(self) -> None:
        """Take the store's seal key (made by whichever process came first) unless one
        was configured; a 503 while the store cannot be read."""
        if not self._seal_key_pending:
            return
        secret = getattr(self.store, "secret", None)
        if secret is None:
            self._seal_key_pending = False
            log.warning("no seal key and no store: sealed items are valid in this process only")
            return
        try:
            key = decode_key(await secret("seal_key", new_key()))
        except Exception as exc:
            log.warning("reading the seal key from the store failed: %s", exc)
            raise ApiError(503, "The store is unavailable; try again.",
                           code="store_unavailable") from None  # fmt: skip
        self.sealer = Sealer(key)
        self._seal_key_pending = False

    async def _prepare(
        self,
        req: CreateRequest,
        tenant: str,
        call: ModelCall,
        context: list[dict[str, Any]] | None,
        compacting: bool,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Fill in `call.items`: the model context (`context`, else loaded) with compaction
        items turned back into their summaries and reasoning carriers opened
        (`carry.open_context`); when `compacting`, the call becomes the summary call.
        Returns the context as the client named it and as opened."""
        await self._load_seal_key()
        items = context if context is not None else await self.context(req, tenant)
        chained = len(items) - len(req.items)  # the first ones came from the store

        def param(i: int) -> str:
            return "previous_response_id" if i < chained else f"input[{i - chained}]"

        call.items = carry.open_context(items, self.sealer, tenant, call.warnings, param)
        opened = call.items
        if compacting:
            self._compaction_call(call)
        return items, opened

    def _seal_summary(self, tenant: str, summary: str) -> str:
        return self.sealer.seal("compaction", tenant, {"summary": summary})

    @staticmethod
    def _compaction_call(call: ModelCall) -> None:
        """Turn `call` into the call that writes a compaction summary of its items: the
        summary request appended, the compaction instructions added, tools kept (the
        prompt prefix stays cacheable) but not callable; `mcp` tools left out (an upstream
        that runs them itself would list their servers)."""
        call.items = carry.compaction_call_items(call.items)
        call.instructions = "\n\n".join(
            text for text in (call.instructions, carry.COMPACTION_INSTRUCTIONS) if text
        )
        tools = [t for t in call.request.tools or [] if t.get("type") != "mcp"] or None
        call.request = msgspec.structs.replace(
            call.request, tools=tools, tool_choice="none" if tools else None, text=None, mcp={}
        )

    async def context(
        self, req: CreateRequest, tenant: str = "", *, chain: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The model context: the previous chain, then this request's input with every
        `item_reference` replaced by the item it names (`req.items` is updated too).
        `chain`: the previous response's items already in hand (a WebSocket connection's
        cache); otherwise the chain is loaded from the store. With `conversation`, its
        items come first instead (and `req.items` get their ids)."""
        req.items = await self.resolve_items(req.items, tenant)
        if req.conversation_id is not None:
            held = await self.conversations.context(req.conversation_id, tenant, req.items)
            return [*held, *req.items]
        if req.previous_response_id is None:
            return list(req.items)
        if chain is not None:
            return [*chain, *req.items]
        previous_id = req.previous_response_id
        missing = previous_response_not_found(previous_id)
        found = None if self.store is None else await self.store.load_chain(previous_id, tenant)
        if found is None:
            raise missing
        if found.status in ACTIVE_STATUSES:
            raise invalid(
                f"Previous response with id {quote(previous_id)} is still {found.status}; "
                "continue it once it has finished.",
                "previous_response_id",
                code="previous_response_in_progress",
            )
        if found.items is None:
            raise missing
        return [*found.items, *req.items]

    async def resolve_items(
        self, items: list[dict[str, Any]], tenant: str, param: str = "input"
    ) -> list[dict[str, Any]]:
        """`items` with every `item_reference` replaced by the stored item it names
        (404 naming `{param}[i].id` for an unknown one)."""
        return [await self._resolve(item, f"{param}[{i}]", tenant) for i, item in enumerate(items)]

    async def _resolve(self, item: dict[str, Any], where: str, tenant: str) -> dict[str, Any]:
        if item["type"] != "item_reference":
            return item
        found = None if self.store is None else await self.store.get_item(item["id"], tenant)
        if found is None:
            raise not_found(
                f"Item with id {quote(item['id'])} not found.",
                "item_not_found",
                f"{where}.id",
            )
        return found
