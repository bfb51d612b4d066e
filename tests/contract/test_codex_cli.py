"""Codex CLI (npm `@openai/codex`, pinned in codex/package-lock.json) runs a tool loop through
`respgate serve` and `echo`, over HTTP and over WebSocket (`supports_websockets = true`).

`echo` calls every function tool Codex offers (parallel tool calls), with only the required
arguments: `exec_command` runs the prompt as a shell command, Codex sends the outputs back,
and `echo` answers `Tool output: ...`. Over WebSocket, Codex first sends its prewarm
(`generate: false`) and continues from it. Codex's `goals` feature is on, as by default:
`echo` calls `create_goal` too, after which Codex sends the goal as a `function_call_output`
with a `name` and no `call_id`.

`scripts/test.sh` installs it (`npm ci` in tests/contract/codex); skipped when the native
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

CODEX = npm_bin("codex", "codex")

pytestmark = pytest.mark.skipif(
    not runs(CODEX, timeout=30), reason="needs `npm ci` in tests/contract/codex (scripts/test.sh)"
)


def codex_exec(tmp_path: Path, base_url: str, model: str, websocket: bool, marker: str) -> str:
    """`codex exec "echo MARKER"` against respgate; its output (asserting it succeeded)."""
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "respgate"\n\n'
        "[model_providers.respgate]\n"
        f'name = "respgate"\nbase_url = "{base_url}/v1"\nwire_api = "responses"\n'
        f"supports_websockets = {str(websocket).lower()}\n"
    )
    done = subprocess.run(
        [str(CODEX), "exec", "--skip-git-repo-check",
         "--dangerously-bypass-approvals-and-sandbox", f"echo {marker}"],
        cwd=work, env={**os.environ, "CODEX_HOME": str(home)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    # The command ran (exec_command's arguments were accepted) and the loop came back.
    assert f"/bin/bash -lc 'echo {marker}'" in out, out[-3000:]
    assert "succeeded" in out
    return done.stdout


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_codex_exec_tool_loop_through_echo(tmp_path: Path, websocket: bool) -> None:
    with running({"RESPGATE_DATA_DIR": str(tmp_path / "data")}) as server:
        marker = f"through-respgate-{'ws' if websocket else 'http'}"
        stdout = codex_exec(tmp_path, server.url, "echo", websocket, marker)
        counts = responses_by_transport(server.url, "echo")
    assert stdout.strip().startswith("Tool output:"), stdout[-3000:]
    if websocket:  # prewarm, the call turn, the answer turn; nothing over HTTP
        assert counts == {"websocket:completed": 3.0}, counts
    else:
        assert counts == {"sse:completed": 2.0}, counts


def test_codex_over_websocket_through_a_reasoning_chat_upstream(tmp_path: Path) -> None:
    """The same loop with a Chat Completions upstream that streams `reasoning_content`
    (default event names): the prewarm costs no upstream call."""
    with UpstreamThread() as upstream:
        config = reasoner_config(tmp_path / "respgate.toml", upstream.url)
        env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
        with running(env, "--config", str(config)) as server:
            stdout = codex_exec(tmp_path, server.url, "reasoner", True, "via-chat-upstream")
            counts = responses_by_transport(server.url, "reasoner")
    assert counts == {"websocket:completed": 3.0}, counts
    assert len(upstream.requests) == 2  # the call turn and the answer turn
    assert upstream.requests[1]["messages"][-1]["role"] == "tool"
    assert "via-chat-upstream" in stdout
