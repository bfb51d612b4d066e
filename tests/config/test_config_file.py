"""The configuration file is decoded strictly: every table and key known, every type
checked, one line naming the key path for anything else. The shipped example and every
TOML block of the README load as written."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import msgspec
import pytest

from respgate.cli import load
from respgate.config import ConfigError, ConfigFile, Section, example, parse_config
from tests.support.readme import Block, readme_blocks

# The variables the README's and the example's files name.
ENV = {
    "LOCAL_KEY": "local-key",
    "GROQ_API_KEY": "gsk-test",
    "TEAM_A_KEY": "sk-team-a-" + "1" * 30,
    "BATCH_KEY": "sk-batch-" + "2" * 30,
    "DOCS_MCP_AUTH": "Bearer docs-secret",
}


def parse(text: str, env: dict[str, str] | None = None):
    return parse_config(tomllib.loads(text), ENV if env is None else env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[provider.x]\nkind = "anthropic"', 'provider: unknown table (did you mean "providers"?)'),
        ('[[route]]\nmodel = "x"', 'route: unknown table (did you mean "routes"?)'),
        ("[sever]\nallow_open = true", 'sever: unknown table (did you mean "server"?)'),
        (
            "[store]\nretention_dayz = 3",
            'store.retention_dayz: unknown key (did you mean "retention_days"?)',
        ),
        ("port = 8080", "port: unknown key"),
        (
            '[server]\ncors_origins = "h"',
            "server.cors_origins: expected an array of strings, got a string",
        ),
        ('[server]\ncors_origins = ["h"]', "server.cors_origins[0]: must start with http://"),
        ("[server]\nmetrics = 1", "server.metrics: expected a boolean, got an integer"),
        (
            '[server]\nlog_format = "jsn"',
            """server.log_format: 'jsn' is not one of "text", "json" (did you mean "json"?)""",
        ),
        (
            "[server]\nmax_body_bytes = 1.5",
            "server.max_body_bytes: expected an integer, got a number",
        ),
        ("[server]\nheader_timeout = -1", "server.header_timeout: must not be negative"),
        ("[store]\nretention_days = -2", "store.retention_days: must be at least -1"),
        (
            '[store]\ndatabase_url = "mysql://x"',
            "store.database_url: must start with postgresql://",
        ),
        ("[store]\nenabled = 2021-01-01", "store.enabled: expected a boolean, got a date/time"),
        ('[[keys]]\nkey_env = "X"', "keys[0].tenant: missing"),
        (
            '[[keys]]\ntenant = "a"\nadmin = "yes"',
            "keys[0].admin: expected a boolean, got a string",
        ),
        ('[[keys]]\ntenant = "a"\nrpm = 3', "keys[0].rpm: unknown key"),
        ("[limits]\nconcurrent_streams = -1", "limits.concurrent_streams: must not be negative"),
        ('[limits]\nredis_url = "127.0.0.1:6379"', "limits.redis_url: must start with redis://"),
        ('[limits]\non_redis_error = "shut"', "limits.on_redis_error: 'shut' is not one of"),
        (
            '[prices."gpt-4o*"]\ninput = "2.5"',
            'prices."gpt-4o*".input: expected a number, got a string',
        ),
        ("[prices.x]\ninptu = 1", 'prices.x.inptu: unknown key (did you mean "input"?)'),
        (
            "[telemetry]\nservice = 1",
            'telemetry.service: unknown key (did you mean "service_name"?)',
        ),
        (
            '[providers.a]\nkind = "responses"\nbase_url = "http://x"\nstream_idle_timeout = "1m"',
            "providers.a.stream_idle_timeout: expected a number, got a string",
        ),
        ('[providers.a]\nkind = "responses"', "providers.a.base_url: missing"),
        ("[routes]\nmodel = 1", "routes: expected an array of tables, got a table"),
        (
            '[providers.a]\nkind = "responses"\nbase_url = "http://x"\n'
            '[[routes]]\nmodel = "m"\nprovider = "b"',
            "routes[0].provider: no provider named 'b'",
        ),
    ],
)
def test_every_mistake_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_sections_are_typed_with_their_defaults() -> None:
    cfg = parse(
        '[server]\ncors_origins = ["https://app.example"]\nmetrics = false\n'
        "[store]\nretention_days = -1\n[limits]\nrequests_per_minute = 60\n"
        '[prices."gpt-*"]\ninput = 1\noutput = 2\n'
        '[[keys]]\ntenant = "a"\nkey = "sk-plain-key-plain-key-1"\ntokens_per_minute = 0\n'
    )
    assert cfg.server.cors_origins == ("https://app.example",) and cfg.server.metrics is False
    assert cfg.server.log_format == "text" and cfg.server.max_body_bytes == 32 * 1024 * 1024
    assert cfg.store.retention_days == -1 and cfg.store.enabled
    assert cfg.limits.requests_per_minute == 60 and cfg.limits.on_redis_error == "open"
    assert cfg.prices["gpt-*"].input == 1.0 and cfg.prices["gpt-*"].cached_input is None
    (key,) = cfg.keys
    assert (key.tenant, key.tokens_per_minute, key.requests_per_minute) == ("a", 0, None)
    assert "sk-plain" not in repr(key) and "sk-plain" not in repr(cfg)
    assert cfg.telemetry.service_name == "respgate" and cfg.telemetry.otlp_endpoint == ""


def declared_keys(cls: type, prefix: str = "") -> set[str]:
    """Every key path the file format declares ("providers.*.kind", "prices.*.input", ...)."""
    paths = set()
    for f in msgspec.structs.fields(cls):
        path = f"{prefix}{f.name}"
        paths.add(path)
        tp = f.type
        origin = typing.get_origin(tp)
        if origin is dict:
            tp, path = typing.get_args(tp)[1], f"{path}.*"
        elif origin is tuple:
            tp, path = typing.get_args(tp)[0], f"{path}[]"
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            paths |= declared_keys(tp, f"{path}.")
    return paths


def written_keys(data: object, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(data, dict):
        for k, v in data.items():
            name = "*" if prefix in ("providers.", "prices.", "mcp.servers.") else k
            paths.add(f"{prefix}{name}")
            paths |= written_keys(v, f"{prefix}{name}.")
    elif isinstance(data, list) and data and isinstance(data[0], dict):
        for item in data:
            paths |= written_keys(item, f"{prefix.rstrip('.')}[].")
    return paths


def test_the_example_loads_and_shows_every_key() -> None:
    text = example()
    cfg = parse(text)
    assert set(cfg.providers) == {"local", "groq"} and len(cfg.keys) == 2
    # Commented-out keys count as shown: uncomment them for this check.
    shown = written_keys(tomllib.loads(re.sub(r"(?m)^# (\w+ = )", r"\1", text)))
    missing = declared_keys(ConfigFile) - shown
    assert not missing, f"the example leaves out {sorted(missing)}"
    assert issubclass(ConfigFile, Section)


TOML_BLOCKS = readme_blocks("toml")


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=[b.id for b in TOML_BLOCKS])
def test_every_readme_toml_block_loads_as_written(block: Block, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(block.skip)
    path = tmp_path / "respgate.toml"
    path.write_text(block.text)
    load(str(path), ENV)  # the keys too


def test_the_readme_has_toml_blocks() -> None:
    assert len(TOML_BLOCKS) >= 4


def test_mcp_section() -> None:
    cfg = parse(
        '[mcp]\nallowed_hosts = ["MCP.Example"]\nmax_steps = 3\npassthrough = "responses"\n'
        '[mcp.servers.docs]\nurl = "https://docs.example/mcp"\n'
        'headers = { "x-team" = "a" }\nheaders_env = { Authorization = "DOCS_MCP_AUTH" }\n'
    )
    assert cfg.mcp.allowed_hosts == ("mcp.example",) and cfg.mcp.max_steps == 3
    assert cfg.mcp.passthrough == "responses" and parse("").mcp.passthrough == "never"
    docs = cfg.mcp.servers["docs"]
    assert docs.headers == {"x-team": "a", "Authorization": "Bearer docs-secret"}
    assert "docs-secret" not in repr(cfg)
    assert parse("").mcp.allowed_urls == () and parse("").mcp.servers == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[mcp.servers.docs]\nurl = "https://d/mcp"\nheaders_env = { A = "NOPE" }\n',
         "mcp.servers.docs.headers_env.A: environment variable NOPE is not set"),
        ('[mcp.servers.docs]\nurl = "ftp://d/mcp"\n', "mcp.servers.docs.url: must start with"),
        ('[mcp]\nallowed_urls = ["mcp.example"]\n', "mcp.allowed_urls[0]: must start with"),
        ("[mcp]\nmax_steps = 0\n", "mcp.max_steps"),
        ('[mcp]\npassthrough = "always"\n', "mcp.passthrough"),
        ("[mcp]\nallowed_host = []\n", 'did you mean "allowed_hosts"'),
    ],
)  # fmt: skip
def test_mcp_section_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert message in str(caught.value)
