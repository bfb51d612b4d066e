"""The public Open Responses compliance suite (a pinned copy in `suite/`, Apache-2.0, see its
NOTICE.md) against `respgate serve`: once against `echo`, once against a Chat Completions
upstream that streams `reasoning_content`, served with `[server] reasoning_events =
"open_responses"` (the spec's event names, which the suite's schemas check).

Every test must pass except those in KNOWN_FAILURES: work owned by an open branch, listed with
its owner so that the list empties as the work lands. `scripts/test.sh` runs `npm ci` in
`suite/`; without Node.js (or without that install) the test is skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.compliance.reasoning_upstream import UpstreamThread
from tests.support.live import running

SUITE = Path(__file__).resolve().parent / "suite"
TESTS = 17

# Test id -> why it fails today (the owner's branch empties this list when it lands).
KNOWN_FAILURES: dict[str, str] = {}

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (SUITE / "node_modules" / ".bin" / "tsx").exists(),
    reason="needs Node.js and `npm ci` in tests/compliance/suite (scripts/test.sh does both)",
)


def run_suite(base_url: str, model: str) -> dict:
    done = subprocess.run(
        [str(SUITE / "node_modules" / ".bin" / "tsx"), "--import", "./ws-shim.mjs",
         "bin/compliance-test.ts", "--base-url", base_url, "--model", model,
         "--api-key", "test", "--json"],
        cwd=SUITE, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def assert_passes(report: dict) -> None:
    results = {r["id"]: r for r in report["results"]}
    assert len(results) == TESTS, sorted(results)
    failed = {i: r.get("errors") for i, r in results.items() if r["status"] != "passed"}
    unexpected = {i: e for i, e in failed.items() if i not in KNOWN_FAILURES}
    assert not unexpected, json.dumps(unexpected, indent=1)[:4000]
    fixed = set(KNOWN_FAILURES) - set(failed)
    assert not fixed, f"these pass now: take them off KNOWN_FAILURES: {sorted(fixed)}"


def test_echo(tmp_path: Path) -> None:
    with running({"RESPGATE_DATA_DIR": str(tmp_path)}) as server:
        assert_passes(run_suite(f"{server.url}/v1", "echo"))


def test_reasoning_upstream_with_open_responses_names(tmp_path: Path) -> None:
    with UpstreamThread() as upstream:
        config = tmp_path / "respgate.toml"
        config.write_text(
            '[server]\nreasoning_events = "open_responses"\n'
            f'[providers.thinker]\nkind = "chat_completions"\nbase_url = "{upstream.url}"\n'
            '[[routes]]\nmodel = "reasoner"\nprovider = "thinker"\n'
        )
        env = {"RESPGATE_DATA_DIR": str(tmp_path)}
        with running(env, "--config", str(config)) as server:
            report = run_suite(f"{server.url}/v1", "reasoner")
            body = {"model": "reasoner", "input": "hi", "stream": True}
            sse = httpx.post(f"{server.url}/v1/responses", json=body, timeout=30).text
    assert_passes(report)
    # The upstream's reasoning went out under the spec's names (what the suite validated).
    names = {line.removeprefix("event: ") for line in sse.splitlines() if line.startswith("event:")}
    assert {"response.reasoning.delta", "response.reasoning.done"} <= names
    assert not any(name.startswith("response.reasoning_text") for name in names)
