"""The real JavaScript clients (openai-node, the Vercel AI SDK) against a live server.

`scripts/test.sh` installs them (`npm ci` in tests/contract/js); on a machine
without Node.js the test is skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.live import LiveServer

JS = Path(__file__).resolve().parent / "js"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (JS / "node_modules").is_dir(),
    reason="needs Node.js and `npm ci` in tests/contract/js (scripts/test.sh does both)",
)


def test_js_clients(engine) -> None:
    with LiveServer(engine) as server:
        done = subprocess.run(
            ["node", "clients.mjs", f"{server.url}/v1"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    text = out["openai_text"]
    assert "".join(text["deltas"]) == "Echo: hello from js"
    assert text["status"] == "completed" and text["usage"]["output_tokens"] == 4

    tools = out["openai_tools"]
    assert tools["call"] == {
        "type": "function_call",
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert tools["answer"] == "Tool output: snow"

    assert out["openai_failure"] == {
        "raised": True,
        "message": "echo: scripted failure (metadata echo_scenario=fail)",
    }

    vercel = out["vercel_text"]
    assert vercel["text"] == "Echo: hello vercel" and vercel["finishReason"] == "stop"
    assert vercel["usage"]["outputTokens"] == 3

    assert out["vercel_tools"] == {
        "toolCalls": [{"toolName": "get_weather", "input": {"city": "Lima"}}],
        "finishReason": "tool-calls",
    }
