"""`respgate serve` start-up checks: one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from respgate.cli import redact
from tests.support.live import SRC, free_port


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


def respgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "respgate", *args],
        env={**os.environ, "PYTHONPATH": SRC, "RESPGATE_NO_OLLAMA_PROBE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unknown_tables_and_wrong_types_stop_start_up_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    for text, message in [
        ("[sever]\nallow_open = true\n", 'sever: unknown table (did you mean "server"?)'),
        ('[server]\ncors_origins = "h"\n', "server.cors_origins: expected an array of strings"),
    ]:
        config.write_text(text)
        done = serve("--config", str(config), cwd=tmp_path)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"respgate: invalid configuration: {message}"
        )


def test_config_check_prints_the_effective_setup_with_secrets_masked(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text(
        '[providers.up]\nkind = "responses"\nbase_url = "https://up.example/v1"\n'
        'api_key_env = "UP_KEY"\nheaders = { "x-secret-header" = "hdr-value" }\n'
        '[[routes]]\nmodel = "gpt-*"\nprovider = "up"\nupstream_model = "gpt-5"\n'
        '[store]\ndatabase_url = "postgresql://me:s3cret@db.example/respgate"\n'
        '[[keys]]\ntenant = "team-a"\nkey = "sk-plain-key-0123456789"\n'
    )
    done = respgate("config", "check", str(config), env={"UP_KEY": "sk-upstream-secret"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "up: responses https://up.example/v1 (key from $UP_KEY" in out
    assert "gpt-* -> up/gpt-5" in out and "echo -> built-in" in out
    assert "postgresql://me:***@db.example/respgate" in out and "keys: 1 (team-a)" in out
    for secret in ("s3cret", "sk-upstream-secret", "sk-plain-key", "hdr-value"):
        assert secret not in out
    broken = respgate("config", "check", str(config))  # UP_KEY unset
    assert broken.returncode == 2 and broken.stdout == ""
    assert broken.stderr.strip().endswith(
        "providers.up.api_key_env: environment variable UP_KEY is not set"
    )
    assert "Traceback" not in broken.stderr


def test_config_example_is_the_shipped_file_and_checks(tmp_path: Path) -> None:
    done = respgate("config", "example")
    assert done.returncode == 0 and "[providers." in done.stdout and "[telemetry]" in done.stdout
    path = tmp_path / "respgate.toml"
    path.write_text(done.stdout)
    env = {"GROQ_API_KEY": "gsk-test", "TEAM_A_KEY": "sk-team-a-" + "1" * 30}
    checked = respgate("config", "check", str(path), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "llama-* -> groq/llama-3.3-70b-versatile, then local/llama3.2" in checked.stdout
