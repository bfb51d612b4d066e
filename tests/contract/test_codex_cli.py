"""Codex CLI (npm `@openai/codex`, pinned in codex/package-lock.json) runs a tool loop through
`respgate serve` and `echo`, over HTTP and over WebSocket (`supports_websockets = true`).

`echo` calls every function tool Codex offers (parallel tool calls), with only the required
arguments: `exec_command` runs the prompt as a shell command, Codex sends the outputs back,
and `echo` answers `Tool output: ...`. Over WebSocket, Codex first sends its prewarm
(`generate: false`) and continues from it. Codex's `goals` feature is turned off: `echo`
would call `create_goal`, after which Codex sends a `function_call_output` without a
`call_id` (a shape respgate refuses with a 400).

`scripts/test.sh` installs it (`npm ci` in tests/contract/codex); skipped when the native
binary is not installed (no Node.js, an unsupported platform, or no registry).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.live import running

CODEX = Path(__file__).resolve().parent / "codex" / "node_modules" / ".bin" / "codex"


def codex_runs() -> bool:
    try:
        done = subprocess.run([str(CODEX), "--version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


pytestmark = pytest.mark.skipif(
    not codex_runs(), reason="needs `npm ci` in tests/contract/codex (scripts/test.sh)"
)


def responses_by_transport(base_url: str) -> dict[str, float]:
    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    pattern = r'respgate_responses_total\{model="echo",status="(\w+)",transport="(\w+)"\} (\S+)'
    for status, transport, value in re.findall(pattern, metrics):
        counts[f"{transport}:{status}"] = float(value)
    return counts


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_codex_exec_tool_loop_through_echo(tmp_path: Path, websocket: bool) -> None:
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    with running({"RESPGATE_DATA_DIR": str(tmp_path / "data")}) as server:
        (home / "config.toml").write_text(
            'model = "echo"\nmodel_provider = "respgate"\n\n'
            "[model_providers.respgate]\n"
            f'name = "respgate"\nbase_url = "{server.url}/v1"\nwire_api = "responses"\n'
            f"supports_websockets = {str(websocket).lower()}\n\n"
            "[features]\ngoals = false\n"
        )
        marker = f"through-respgate-{'ws' if websocket else 'http'}"
        done = subprocess.run(
            [str(CODEX), "exec", "--skip-git-repo-check",
             "--dangerously-bypass-approvals-and-sandbox", f"echo {marker}"],
            cwd=work, env={**os.environ, "CODEX_HOME": str(home)},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        counts = responses_by_transport(server.url)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    # The command ran (exec_command's arguments were accepted) and the loop came back to echo.
    assert f"/bin/bash -lc 'echo {marker}'" in out, out[-3000:]
    assert "succeeded" in out
    assert done.stdout.strip().startswith("Tool output:"), out[-3000:]
    if websocket:  # prewarm, the call turn, the answer turn; nothing over HTTP
        assert counts == {"websocket:completed": 3.0}, counts
    else:
        assert counts == {"sse:completed": 2.0}, counts
