"""`SignalStream.batches()`: an upstream read's signals together, except that the read
holding the first token is split after it, with a turn of the event loop between (so the
run sends the first token before it handles the rest of that read). Real HTTP against
the fake upstream."""

from __future__ import annotations

import asyncio
from typing import Any

from respgate.protocol.signals import TextDelta

from .fake_upstream import FakeUpstream, Reply, fixture
from .support import call_of, request, router_for

TEXT = fixture("chat_completions", "text")  # "Hel", a comment, "lo!", finish, usage, [DONE]


async def batches_and_turns(reply: Reply) -> tuple[list[list[Any]], list[list[int]]]:
    """Each batch, and which batches' loop turns had come when it arrived."""
    async with FakeUpstream(reply) as up:
        stream: Any = await router_for("chat_completions", up.url).open("m", call_of(request()))
        got: list[list[Any]] = []
        turns: list[int] = []  # batch k's turn: a callback scheduled when batch k arrived
        seen: list[list[int]] = []
        async for batch in stream.batches():
            seen.append(list(turns))
            got.append(batch)
            asyncio.get_running_loop().call_soon(turns.append, len(got))
        await stream.aclose()
    return got, seen


def texts(batch: list[Any]) -> list[str]:
    return [s.text for s in batch if isinstance(s, TextDelta)]


async def test_the_read_holding_the_first_token_is_split_after_it() -> None:
    got, seen = await batches_and_turns(Reply(TEXT, one_write=True))  # read whole at once
    first = next(i for i, batch in enumerate(got) if texts(batch))
    assert texts(got[first]) == ["Hel"]
    assert isinstance(got[first][-1], TextDelta)  # the batch ends at the first token
    assert [t for batch in got[first + 1 :] for t in texts(batch)] == ["lo!"]
    # the loop turned between the first token and the rest of its read
    assert first + 1 in seen[first + 1]


async def test_later_reads_stay_whole() -> None:
    second = TEXT.index(b"data:", TEXT.index(b"Hel"))  # a pause before the frame after "Hel"
    got, _ = await batches_and_turns(Reply(TEXT, pause_after=second, pause=0.05))
    assert [texts(batch) for batch in got if texts(batch)] == [["Hel"], ["lo!"]]
    assert any(texts(b) == ["lo!"] and len(b) > 1 for b in got)  # "lo!", finish and usage
