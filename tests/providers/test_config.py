from __future__ import annotations

import re
from pathlib import Path

import pytest

from respgate.config import ConfigError, Target, load_config

GOOD = """
[server]
cors_origins = ["http://localhost:5173"]

[providers.groq]
kind = "chat_completions"
base_url = "https://api.groq.com/openai/v1/"
api_key_env = "GROQ_KEY"
read_timeout = 0
stream_idle_timeout = 20
headers = { "x-team" = "a" }
max_retries = 4

[providers.local]
kind = "chat_completions"
base_url = "http://127.0.0.1:11434/v1"

[[routes]]
model = "llama-*"
provider = "groq"
upstream_model = "llama-3.3-70b"
fallbacks = [{ provider = "local", upstream_model = "llama3.2" }]
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "respgate.toml"
    path.write_text(text)
    return load_config(str(path), {"GROQ_KEY": "sekrit"} if env is None else env)


def test_a_good_file(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD)
    groq = cfg.providers["groq"]
    assert (groq.kind, groq.base_url, groq.api_key, groq.read_timeout, groq.max_retries) == (
        "chat_completions", "https://api.groq.com/openai/v1", "sekrit", None, 4)  # fmt: skip
    assert groq.headers == {"x-team": "a"} and groq.connect_timeout == 10.0 and groq.timeout is None
    assert "sekrit" not in repr(groq)
    assert groq.stream_idle_timeout == 20.0
    assert cfg.providers["local"].stream_idle_timeout == 60.0  # the default
    (route,) = cfg.routes
    assert route.matches("llama-3") and not route.matches("gpt-4")
    assert route.fallbacks == (Target("local", "llama3.2"),)
    assert cfg.server.cors_origins == ("http://localhost:5173",)
    assert cfg.store.enabled and cfg.store.retention_days == 30 and cfg.keys == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('base_url = "https://api.groq', 'base_urll = "https://api.groq'),
            "providers.groq.base_urll: unknown key",
        ),
        (
            (
                'kind = "chat_completions"\nbase_url = "https://api',
                'kind = "grpc"\nbase_url = "https://api',
            ),
            "providers.groq.kind: 'grpc'",
        ),
        (
            ("max_retries = 4", 'max_retries = "4"'),
            "providers.groq.max_retries: expected an integer",
        ),
        (
            ("read_timeout = 0", "read_timeout = -1"),
            "providers.groq.read_timeout: must not be negative",
        ),
        (('upstream_model = "llama-3.3-70b"', "upstream = 1"), "routes[0].upstream: unknown key"),
        (
            ('provider = "local", upstream', 'provider = "nope", upstream'),
            "routes[0].fallbacks[0].provider: no provider named 'nope'",
        ),
        (
            ('headers = { "x-team" = "a" }', 'headers = { "x-team" = 1 }'),
            "providers.groq.headers.x-team: expected a string",
        ),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    assert edit[0] in GOOD
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, GOOD.replace(edit[0], edit[1], 1))


def test_missing_key_variable_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape("providers.groq.api_key_env: environment variable GROQ_KEY is not set"),
    ):
        load(tmp_path, GOOD, env={})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(tmp_path, "[providers\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.toml"), {})


def test_defaults_from_the_environment() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"}
    cfg = load_config(None, env, probe=lambda: ["llama3.2", "qwen3"])
    assert {n: (p.kind, p.base_url) for n, p in cfg.providers.items()} == {
        "openai": ("responses", "https://api.openai.com/v1"),
        "anthropic": ("anthropic", "https://api.anthropic.com/v1"),
        "ollama": ("chat_completions", "http://127.0.0.1:11434/v1"),
    }
    routes = {r.model: r.provider for r in cfg.routes}
    assert (
        routes["gpt-*"] == "openai"
        and routes["claude-*"] == "anthropic"
        and routes["qwen3"] == "ollama"
    )
    assert next(r for r in cfg.routes if r.matches("o3-mini")).provider == "openai"


def test_defaults_skip_the_probe_on_request_and_without_ollama() -> None:
    def probe() -> list[str]:
        raise AssertionError("probed")

    cfg = load_config(
        None,
        {"RESPGATE_NO_OLLAMA_PROBE": "1", "OPENAI_BASE_URL": "http://vllm:8000/v1/"},
        probe=probe,
    )
    assert (
        list(cfg.providers) == ["openai"]
        and cfg.providers["openai"].base_url == "http://vllm:8000/v1"
    )
    assert load_config(None, {}, probe=lambda: None).providers == {}
