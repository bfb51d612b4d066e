"""`respgate serve` start-up checks: one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from respgate import __version__
from respgate.cli import redact
from tests.support.live import SRC, ServerProcess, free_port, running


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
        '[mcp]\nallowed_hosts = ["mcp.example"]\npassthrough = "responses"\n'
        '[mcp.servers.docs]\nurl = "https://docs.example/mcp"\n'
        'headers_env = { Authorization = "DOCS_AUTH" }\n'
    )
    env = {"UP_KEY": "sk-upstream-secret", "DOCS_AUTH": "Bearer mcp-secret"}
    done = respgate("config", "check", str(config), env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "up: responses https://up.example/v1 (key from $UP_KEY" in out
    assert "gpt-* -> up/gpt-5" in out and "echo -> built-in" in out
    assert "postgresql://me:***@db.example/respgate" in out and "keys: 1 (team-a)" in out
    assert (
        "mcp: 1 named server (docs); client URLs: 0 URL prefixes, 1 host; passthrough: "
        "responses" in out
    )
    for secret in ("s3cret", "sk-upstream-secret", "sk-plain-key", "hdr-value", "mcp-secret"):
        assert secret not in out
    broken = respgate("config", "check", str(config), env={"DOCS_AUTH": "x"})  # UP_KEY unset
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
    env = {"GROQ_API_KEY": "gsk-test", "TEAM_A_KEY": "sk-team-a-" + "1" * 30, "DOCS_MCP_AUTH": "x"}
    checked = respgate("config", "check", str(path), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "llama-* -> groq/llama-3.3-70b-versatile, then local/llama3.2" in checked.stdout


def test_version() -> None:
    done = respgate("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"respgate {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--port", "99999"), "argument --port: 99999 is outside 1-65535"),
        (("--port", "0"), "argument --port: 0 is outside 1-65535"),
        (("--port", "http"), "argument --port: 'http' is not a port number"),
        (("--log-level", "loud"), "argument --log-level: 'loud' is not one of critical"),
        (("--grace", "-1"), "argument --grace: -1 must not be negative"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    done = respgate("serve", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line_and_nothing_says_started(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "respgate", "serve", "--port", str(port)],
            env={**os.environ, "PYTHONPATH": SRC, "RESPGATE_NO_OLLAMA_PROBE": "1"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"respgate: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert done.stdout == ""


def start_logged(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """`respgate serve` with its stderr in a file: (process, url, log path) once it answers."""
    port = free_port()
    log = tmp_path / "stderr.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "respgate", "serve", "--port", str(port), *args],
        env={**os.environ, "PYTHONPATH": SRC, "RESPGATE_NO_OLLAMA_PROBE": "1", **(env or {})},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return proc, url, log
        except httpx.TransportError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize("level", ["WARN", "warning", "Info"])
def test_start_up_block_after_the_bind_at_any_log_level(tmp_path: Path, level: str) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text(
        '[providers.up]\nkind = "chat_completions"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[[routes]]\nmodel = "qwen3"\nprovider = "up"\n'
        '[[keys]]\ntenant = "team-a"\nkey_env = "TEAM_A_KEY"\n'
    )
    env = {"TEAM_A_KEY": "sk-team-a-" + "1" * 30}
    proc, url, log = start_logged(tmp_path, "--log-level", level, "--config", str(config), env=env)
    try:
        deadline = time.monotonic() + 10
        while "health:" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
    finally:
        stop(proc)
    assert f"respgate {__version__} listening on {url}" in text
    assert f"config: {config}" in text and "store: sqlite data (retention 30 days)" in text
    assert "keys: on, 1 (team-a)" in text and "models: echo (built-in); qwen3 -> up" in text
    assert "ollama: not probed" in text
    assert "mcp: 0 named servers; client URLs: none allowed; passthrough: never" in text
    assert "Application startup complete" not in text and "Started server process" not in text
    assert "Traceback" not in text


def test_readyz_turns_503_while_draining_and_healthz_stays_up(tmp_path: Path) -> None:
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env, "--drain-delay", "30") as server, server.client() as c:
        assert (c.get("/readyz").status_code, c.get("/readyz").json()) == (200, {"status": "ready"})
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (ready := c.get("/readyz")).status_code == 200:
            assert time.monotonic() < deadline, "/readyz never reported draining"
            time.sleep(0.05)
        assert ready.status_code == 503 and ready.json() == {
            "status": "unavailable",
            "reason": "draining",
        }
        # still serving while the load balancer notices
        assert c.get("/healthz").status_code == 200
        reply = c.post("/v1/responses", json={"model": "echo", "input": "still here"})
        assert reply.status_code == 200 and reply.json()["status"] == "completed"
        # a second signal skips the rest of the delay
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) in (0, -signal.SIGTERM)


def test_ctrl_c_stops_quietly(tmp_path: Path) -> None:
    proc, _, log = start_logged(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 130
    assert "Traceback" not in log.read_text()


def test_sigterm_without_drain_delay_stops_at_once(tmp_path: Path) -> None:
    server = ServerProcess({"RESPGATE_DATA_DIR": str(tmp_path / "data")})
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) in (0, -signal.SIGTERM)


def test_cors_origins_are_matched_exactly(tmp_path: Path) -> None:
    config = tmp_path / "respgate.toml"
    config.write_text('[server]\ncors_origins = ["http://localhost:5173"]\n')
    env = {"RESPGATE_DATA_DIR": str(tmp_path / "data")}
    with running(env, "--config", str(config)) as server, server.client() as c:
        for origin, allowed in [
            ("http://localhost:5173", True),
            ("http://localhost", False),  # a prefix of an allowed origin
            ("h", False),
        ]:
            r = c.options(
                "/v1/responses",
                headers={"origin": origin, "access-control-request-method": "POST"},
            )
            assert (r.headers.get("access-control-allow-origin") == origin) is allowed, origin


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
