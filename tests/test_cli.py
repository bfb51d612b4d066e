"""`respgate serve` start-up checks: one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from respgate.cli import redact
from tests.support.live import SRC, free_port, running


def serve(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "respgate", "serve", "--port", str(free_port()), *args],
        env={**os.environ, "PYTHONPATH": SRC, "RESPGATE_NO_OLLAMA_PROBE": "1", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text('[providers.x]\nkind = "chat_completions"\nbase_urll = "http://x"\n')
    done = serve("--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "providers.x.base_urll: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    done = serve(
        env={"RESPGATE_DATABASE_URL": "postgresql://me:s3cret@127.0.0.1:1/db"}, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "cannot open the store at postgresql://me:***@127.0.0.1:1/db" in done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr


def test_open_server_refuses_a_public_address(tmp_path: Path) -> None:
    done = serve("--host", "0.0.0.0", cwd=tmp_path)
    assert done.returncode == 2
    assert "refusing to serve 0.0.0.0 without API keys" in done.stderr


def test_redact_leaves_plain_locations_alone() -> None:
    assert redact("data") == "data"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_allow_open_serves_a_public_address_without_keys(tmp_path: Path) -> None:
    env = {"RESPGATE_NO_OLLAMA_PROBE": "1", "RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env, "--host", "0.0.0.0", "--allow-open") as server, server.client() as c:
        r = c.post("/v1/responses", json={"model": "echo", "input": "hi"})
        assert r.status_code == 200
        assert r.json()["status"] == "completed"


def test_server_allow_open_in_the_config_does_the_same(tmp_path: Path) -> None:
    env = {"RESPGATE_NO_OLLAMA_PROBE": "1", "RESPGATE_DATA_DIR": str(tmp_path / "data")}
    config = tmp_path / "respgate.toml"
    config.write_text("[server]\nallow_open = true\n")
    with running(env, "--host", "0.0.0.0", "--config", str(config)) as server:
        assert server.client().get("/v1/models").status_code == 200
    config.write_text("[server]\nallow_open = false\n")
    done = serve("--host", "0.0.0.0", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "refusing to serve 0.0.0.0 without API keys" in done.stderr
