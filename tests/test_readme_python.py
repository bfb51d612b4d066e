"""Every ```python block of the README runs as written against a live `respgate serve`
(only the address `127.0.0.1:8000` is replaced by the test server's). A block that
needs something a test machine lacks is marked `<!-- readme-test: skip REASON -->`
(see tests/support/readme.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import SRC, ServerProcess, running
from tests.support.readme import Block, readme_blocks

BLOCKS = readme_blocks("python")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("data")
    with running({"RESPGATE_DATA_DIR": str(data), "RESPGATE_NO_OLLAMA_PROBE": "1"}) as server:
        yield server


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_python_block_runs(block: Block, server: ServerProcess, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    assert "127.0.0.1:8000" in block.text, "a block talks to the server at the README's address"
    script = tmp_path / "snippet.py"
    script.write_text(block.text.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}"))
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": SRC},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "every block prints what it got"


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 6
