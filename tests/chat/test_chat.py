"""`respgate chat`: the renderer on known streams, and conversations against respgate."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from rich.console import Console

from respgate.chat import Chat, Renderer
from respgate.cli import main
from respgate.client import Client, decode_event
from respgate.client.accumulate import Accumulator
from respgate.config import KeyConfig
from respgate.engine import Engine
from respgate.providers.registry import ProviderRegistry
from respgate.sse import encode_json
from respgate.store.keys import ApiKeys
from tests.client import streams
from tests.support.live import SRC, LiveServer, free_port
from tests.support.stores import sqlite_engine


def console() -> Console:
    return Console(file=io.StringIO(), width=200, color_system=None)


def render(events: list[dict]) -> str:
    out = console()
    renderer = Renderer(out)
    acc = Accumulator()
    for event in events:
        typed = decode_event(encode_json(event))
        acc.add(typed)
        renderer(typed)
    renderer.finish(acc.result())
    return out.file.getvalue()  # type: ignore[attr-defined]


def test_renders_text_tool_calls_and_usage() -> None:
    text = render(streams.build(streams.TOOLS))
    lines = text.splitlines()
    assert lines[0] == "Checking."
    assert lines[1] == '→ get_weather({"city":"Paris"})'
    assert lines[2] == "→ get_time()"
    assert lines[3] == "completed · 10 in, 7 out tokens · resp_test"


def test_renders_reasoning_refusal_and_incomplete() -> None:
    assert render(streams.build(streams.REASONING)).splitlines() == [
        "Think hard.",
        "raw step",
        "42",
        "completed · 3 in, 9 out (6 reasoning) tokens · resp_test",
    ]
    assert render(streams.build(streams.REFUSAL)).splitlines()[:2] == [
        "I can't ",
        "I won't help with that.",
    ]
    assert (
        render(streams.build(streams.INCOMPLETE))
        .splitlines()[-1]
        .startswith("incomplete (max_output_tokens)")
    )


@pytest.fixture(scope="module")
def with_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LiveServer(sqlite_engine(tmp_path_factory.mktemp("store"))) as server:
        yield f"{server.url}/v1"


@pytest.fixture(scope="module")
def without_store() -> Iterator[str]:
    with LiveServer(Engine(ProviderRegistry())) as server:
        yield f"{server.url}/v1"


def test_turns_are_chained_by_previous_response_id(with_store: str) -> None:
    out = console()
    with Client(with_store) as client:
        chat = Chat(client, out, model="echo")
        first = chat.turn("first")
        second = chat.turn("second")
    assert first is not None and second is not None
    assert second.response["previous_response_id"] == first.id
    assert second.usage is not None and second.usage["input_tokens"] > first.usage["input_tokens"]  # type: ignore[index]
    assert "Echo: second" in out.file.getvalue()  # type: ignore[attr-defined]


def test_without_a_store_the_conversation_is_resent(without_store: str) -> None:
    out = console()
    with Client(without_store) as client:
        chat = Chat(client, out, model="echo")
        chat.turn("first")
        second = chat.turn("second")
    assert second is not None and second.response["previous_response_id"] is None
    assert not chat.chained
    assert "resending the conversation" in out.file.getvalue()  # type: ignore[attr-defined]
    assert second.output_text == "Echo: second"


def test_errors_are_printed_and_the_chat_goes_on(with_store: str) -> None:
    out = console()
    with Client(with_store) as client:
        chat = Chat(client, out, model="no-such-model")
        assert chat.turn("hi") is None
        chat.model = "echo"
        assert chat.turn("hi") is not None
    assert "error: not_found_error, model_not_found" in out.file.getvalue()  # type: ignore[attr-defined]


def test_cli_one_prompt_and_raw(with_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--url", with_store, "hello", "there"]) == 0
    assert capsys.readouterr().out.startswith("Echo: hello there\ncompleted · ")
    assert main(["chat", "--url", with_store, "--raw", "hi"]) == 0
    types = [json.loads(line)["type"] for line in capsys.readouterr().out.splitlines()]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types


def chat_process(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("RESPGATE_API_KEY", "OPENAI_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "respgate", "chat", *args],
        env={**clean, "PYTHONPATH": SRC, "COLUMNS": "200", **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_interactive_commands(with_store: str) -> None:
    lines = ["/help", "first", "second", "/reset", "third", "/model nope", "fourth"]
    lines += ["/model", "/bogus", "/quit", "never sent"]
    done = chat_process("--url", with_store, stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for usage in ("/help", "/reset", "/model NAME", "/quit"):
        assert re.search(rf"^(> )?{re.escape(usage)} ", out, re.M), usage  # the /help list
    assert "Echo: first" in out and "Echo: second" in out and "Echo: third" in out
    assert "(new conversation)" in out and "model: nope" in out
    assert "model_not_found" in out and "Echo: fourth" not in out
    assert "unknown command /bogus; /help lists them" in out and "never sent" not in out
    ids = re.findall(r"· (resp_\w+)$", out, re.M)
    assert len(ids) == 3
    with httpx.Client(base_url=with_store) as http:
        second, third = (http.get(f"/responses/{i}").json() for i in ids[1:])
    assert second["previous_response_id"] == ids[0]
    assert third["previous_response_id"] is None  # /reset started over


@pytest.fixture(scope="module")
def with_keys() -> Iterator[str]:
    keys = ApiKeys.from_config([KeyConfig(tenant="a", key=KEY)])
    with LiveServer(Engine(ProviderRegistry()), keys=keys) as server:
        yield f"{server.url}/v1"


KEY = "sk-chat-test-" + "7" * 30


@pytest.mark.parametrize("variable", ["RESPGATE_API_KEY", "OPENAI_API_KEY"])
def test_the_key_comes_from_the_environment(with_keys: str, variable: str) -> None:
    done = chat_process("--url", with_keys, "hi", env={variable: KEY})
    assert done.returncode == 0 and done.stdout.startswith("Echo: hi"), done.stdout


def test_without_a_key_the_error_is_printed(with_keys: str) -> None:
    done = chat_process("--url", with_keys, "hi")
    assert done.returncode == 1 and "invalid_api_key" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not-a-url", "respgate chat: 'not-a-url' is not an http:// or https:// URL"),
        ("ftp://x/v1", "respgate chat: 'ftp://x/v1' is not an http:// or https:// URL"),
        ("http://[::1", "respgate chat: 'http://[::1' is not a valid URL"),
        ("UNREACHABLE", "respgate chat: cannot reach UNREACHABLE (Connection refused)"),
    ],
)
def test_bad_or_unreachable_urls_are_one_line(url: str, message: str) -> None:
    if url == "UNREACHABLE":
        url = f"http://127.0.0.1:{free_port()}/v1"
        message = message.replace("UNREACHABLE", url)
    done = chat_process("--url", url, "hi")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1
