"""Claude Code (npm `@anthropic-ai/claude-code`, pinned in claude/package-lock.json) runs a
tool-using turn through `respgate serve` over `/v1/messages`: against `echo`, and against a
Chat Completions upstream that thinks aloud and calls a tool (its thinking comes back to
it through the sealed signature of the thinking block Claude Code sends back).

Claude Code is offered only its `Bash` tool (`--tools Bash`, allowed without asking), so
`echo` (and the upstream) call it with the prompt as the command: the shell runs
`echo <marker>`, Claude Code sends the output back as a `tool_result`, and the model's
answer quotes it. Its first requests are `HEAD /` and `POST /v1/messages?beta=true`.

`scripts/test.sh` installs it (`npm ci` in tests/contract/claude); skipped when the native
binary is not installed (no Node.js, an unsupported platform, or no registry).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.compliance.reasoning_upstream import UpstreamThread
from tests.contract.agent_cli import npm_bin, reasoner_config, responses_by_transport, runs
from tests.support.live import running

CLAUDE = npm_bin("claude", "claude")

pytestmark = pytest.mark.skipif(
    not runs(CLAUDE, timeout=60), reason="needs `npm ci` in tests/contract/claude (scripts/test.sh)"
)


def claude_print(tmp_path: Path, base_url: str, model: str, marker: str) -> str:
    """`claude -p "echo MARKER"` against respgate; its output (asserting it succeeded)."""
    home, work = tmp_path / "claude-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "any-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    done = subprocess.run(
        [str(CLAUDE), "-p", f"echo {marker}", "--model", model,
         "--tools", "Bash", "--allowedTools", "Bash"],
        cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def test_claude_code_tool_turn_through_echo(tmp_path: Path) -> None:
    with running({"RESPGATE_DATA_DIR": str(tmp_path / "data")}) as server:
        stdout = claude_print(tmp_path, server.url, "echo", "claude-through-echo")
        counts = responses_by_transport(server.url, "echo")
    # The shell ran `echo claude-through-echo` and its output came back in the tool result.
    assert stdout.strip() == "Tool output: claude-through-echo", stdout[-3000:]
    assert counts == {"sse:completed": 2.0}, counts  # the call turn and the answer turn


def test_claude_code_tool_turn_through_a_chat_completions_upstream(tmp_path: Path) -> None:
    with UpstreamThread() as upstream:
        config = reasoner_config(
            tmp_path / "respgate.toml", upstream.url, "send_reasoning = true\n"
        )
        env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
        with running(env, "--config", str(config)) as server:
            stdout = claude_print(tmp_path, server.url, "reasoner", "claude-via-chat")
            counts = responses_by_transport(server.url, "reasoner")
    assert counts == {"sse:completed": 2.0}, counts
    assert len(upstream.requests) == 2  # the call turn and the answer turn
    answer_turn = upstream.requests[1]["messages"]
    assert answer_turn[-1]["role"] == "tool"
    assert "claude-via-chat" in answer_turn[-1]["content"]
    # The thinking Claude Code sent back reached the upstream as its own reasoning again.
    assert answer_turn[-2]["role"] == "assistant"
    assert answer_turn[-2].get("reasoning_content") == "Let me think about this."
    assert stdout.strip() == "Echo: claude-via-chat", stdout[-3000:]
