"""Records and event streams made by the real protocol code (request parser, builder)."""

from __future__ import annotations

from typing import Any

import orjson

from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.ids import new_id
from respgate.protocol.request import parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Finish, TextDelta, Usage
from respgate.store.base import StoredResponse


def request_response(
    body: dict[str, Any], created_at: int = 1_700_000_000
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(Response object before generation, normalised input items) for a request body."""
    req = parse_create_request(orjson.dumps({"model": "m", **body}))
    return new_response(req, new_id("response"), created_at), req.items


def completed(
    text: str, *, input: Any = "hi", previous: str | None = None, tenant: str = "", **body: Any
) -> StoredResponse:
    """A finished foreground response that answered `text`."""
    response, items = request_response({"input": input, "previous_response_id": previous, **body})
    builder = ResponseBuilder(response, clock=lambda: 1_700_000_001)
    builder.open()
    builder.feed(TextDelta(text))
    builder.feed(Usage(3, 5))
    builder.feed(Finish("stop"))
    return StoredResponse(builder.response, items, tenant)


class Background:
    """A background response driven by a real `ResponseBuilder`."""

    def __init__(self, tenant: str = "", **body: Any) -> None:
        response, items = request_response({"input": "go", "background": True, **body})
        self.builder = ResponseBuilder(response, clock=lambda: 1_700_000_001)
        self.record = StoredResponse(response, items, tenant)
        self.queued = self.builder.open(queued=True)

    @property
    def id(self) -> str:
        return self.record.response["id"]

    def run(self) -> list[dict[str, Any]]:
        return self.builder.run()

    def text(self, text: str) -> list[dict[str, Any]]:
        return self.builder.feed(TextDelta(text))

    def finish(self) -> list[dict[str, Any]]:
        return self.builder.feed(Usage(1, 2)) + self.builder.feed(Finish("stop"))


def wire(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as they look once serialised (what the log gives back)."""
    return orjson.loads(orjson.dumps(events))
