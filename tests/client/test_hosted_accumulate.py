"""respgate's own client accumulates hosted-tool items, annotations and logprobs
(streams a builder made from OpenAI-format fixtures) with no mismatches."""

from __future__ import annotations

import orjson
import pytest

from respgate.client.accumulate import Accumulator
from respgate.client.events import UnknownEvent, decode_event
from tests.providers.test_hosted_items import HOSTED_FIXTURES, replay


@pytest.mark.parametrize("name", [*HOSTED_FIXTURES, "logprobs"])
async def test_client_rebuilds_hosted_streams_exactly(name: str) -> None:
    out = await replay(name)
    acc = Accumulator()
    for event in out.events:
        if isinstance(event, dict):
            acc.add(decode_event(orjson.dumps(event)))
    result = acc.result()
    assert result.mismatches == []
    assert result.rebuilt == {**result.rebuilt, "output": out.response["output"]}
    streamed = [decode_event(orjson.dumps(e)) for e in out.events if isinstance(e, dict)]
    # The streamed fields of hosted items have typed events.
    assert not any(
        isinstance(e, UnknownEvent) and e.type.endswith((".delta", ".done")) for e in streamed
    )
