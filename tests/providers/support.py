"""Shared helpers for provider tests: requests, a one-provider router, and a
runner that drives a `ResponseBuilder` the way the engine does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from respgate.config import Config, ProviderConfig, RouteConfig, Target
from respgate.protocol.builder import ResponseBuilder
from respgate.protocol.request import CreateRequest, parse_create_request
from respgate.protocol.response import new_response
from respgate.protocol.signals import Failure
from respgate.protocol.validate import check_events
from respgate.providers.base import ModelCall
from respgate.providers.router import Router

SECRET = "sk-test-secret-key-123"


def request(**body: Any) -> CreateRequest:
    body.setdefault("model", "m")
    body.setdefault("input", "hi")
    return parse_create_request(orjson.dumps(body))


def call_of(req: CreateRequest, items: list[dict[str, Any]] | None = None) -> ModelCall:
    return ModelCall(
        req,
        list(req.items) if items is None else items,
        model=req.model or "m",
        instructions=req.instructions,
    )


def provider(name: str, kind: str, url: str, **opts: Any) -> ProviderConfig:
    opts.setdefault("max_retries", 0)
    return ProviderConfig(name, kind, url, api_key=SECRET, api_key_env="TEST_KEY", **opts)  # type: ignore[arg-type]


def router_for(
    kind: str,
    url: str,
    *,
    fallbacks: tuple[Target, ...] = (),
    extra: tuple[ProviderConfig, ...] = (),
    **opts: Any,
) -> Router:
    providers = {"up": provider("up", kind, url, **opts), **{p.name: p for p in extra}}
    config = Config(providers, [RouteConfig("m", "up", "upstream-m", fallbacks)])

    async def no_sleep(seconds: float) -> None:
        router.slept.append(seconds)

    router = Router(config, sleep=no_sleep)
    router.slept = []  # type: ignore[attr-defined]
    return router


@dataclass
class Outcome:
    events: list[Any]
    response: dict[str, Any]

    @property
    def text(self) -> str:
        return "".join(
            p.get("text", "")
            for i in self.message_items
            for p in i["content"]
            if p["type"] == "output_text"
        )

    @property
    def refusal(self) -> str:
        return "".join(
            p.get("refusal", "")
            for i in self.message_items
            for p in i["content"]
            if p["type"] == "refusal"
        )

    @property
    def message_items(self) -> list[dict[str, Any]]:
        return [i for i in self.response["output"] if i["type"] == "message"]

    @property
    def calls(self) -> list[tuple[str, str, str, str | None]]:
        """(type, call_id, name, arguments or input) of every tool call item, in output order."""
        return [
            (i["type"], i["call_id"], i["name"], i.get("arguments", i.get("input")))
            for i in self.response["output"]
            if i["type"] in ("function_call", "custom_tool_call")
        ]

    def of_type(self, item_type: str) -> list[dict[str, Any]]:
        return [i for i in self.response["output"] if i["type"] == item_type]


async def drive(stream: Any, req: CreateRequest | None = None) -> Outcome:
    """Feed every signal to a builder, as the engine does, and check the stream."""
    builder = ResponseBuilder(new_response(req or request(), "resp_test", 1), clock=lambda: 2)
    events: list[Any] = builder.open()
    try:
        async for signal in stream:
            events += builder.feed(signal)
            if builder.done:
                break
        else:
            events += builder.feed(Failure("upstream_truncated", "ended early"))
    finally:
        await stream.aclose()
    events.append("[DONE]")
    violations = check_events(events)
    assert not violations, [str(v) for v in violations]
    return Outcome(events, builder.response)
