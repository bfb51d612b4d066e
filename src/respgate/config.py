"""respgate's TOML configuration and its defaults from the environment.

    [providers.groq]
    kind = "chat_completions"            # chat_completions | anthropic | responses
    base_url = "https://api.groq.com/openai/v1"
    api_key_env = "GROQ_API_KEY"         # the key is read from this variable
    connect_timeout = 10                 # seconds to connect
    read_timeout = 300                   # seconds of upstream silence before the first token; 0 = no limit
    stream_idle_timeout = 60             # seconds of upstream silence after it; 0 = no limit
    timeout = 0                          # whole-request limit in seconds; 0 = none
    max_retries = 2                      # before the first byte only
    headers = { "x-team" = "a" }

    [[routes]]
    model = "llama-*"                    # public name or glob
    provider = "groq"
    upstream_model = "llama-3.3-70b"     # default: the requested name
    fallbacks = [{ provider = "local", upstream_model = "llama3.2" }]

`load_config(path, env)` parses and validates the tables it owns
(`providers`, `routes`) and keeps every other table (`server`, ...) in
`Config.tables` for the code that owns it. An unknown key inside an owned
table, a wrong type, a route to an unknown provider or a missing key variable
raises `ConfigError` naming the key (`providers.groq.base_urll: unknown key`).
Without a file the providers come from the environment (`defaults_from_env`).
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ProviderKind = Literal["chat_completions", "anthropic", "responses"]
PROVIDER_KINDS: tuple[str, ...] = ("chat_completions", "anthropic", "responses")

OLLAMA_URL = "http://127.0.0.1:11434/v1"
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com/v1"
OPENAI_MODEL_GLOBS = ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "codex-*", "computer-use-*")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: ProviderKind
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float | None = 300.0  # None: no idle limit (before the first token)
    stream_idle_timeout: float | None = 60.0  # None: no idle limit after the first token
    timeout: float | None = None  # None: no whole-request limit
    headers: dict[str, str] = field(default_factory=dict)
    max_retries: int = 2


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt goes: a provider and the model name it knows."""

    provider: str
    upstream_model: str | None = None  # None: the requested public name


@dataclass(frozen=True, slots=True)
class RouteConfig:
    model: str  # a public name or a glob
    provider: str
    upstream_model: str | None = None
    fallbacks: tuple[Target, ...] = ()

    @property
    def is_glob(self) -> bool:
        return any(c in self.model for c in "*?[")

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model) if self.is_glob else model == self.model


@dataclass(slots=True)
class Config:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routes: list[RouteConfig] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)
    """Top-level tables respgate's other parts own (`server`, ...), unparsed."""


# ---------------------------------------------------------------- parsing

_PROVIDER_KEYS = frozenset(
    {
        "kind",
        "base_url",
        "api_key_env",
        "connect_timeout",
        "read_timeout",
        "stream_idle_timeout",
        "timeout",
        "headers",
        "max_retries",
    }
)
_ROUTE_KEYS = frozenset({"model", "provider", "upstream_model", "fallbacks"})
_TARGET_KEYS = frozenset({"provider", "upstream_model"})


def _table(table: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """`table` checked to be a TOML table holding only `allowed` keys."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key")
    return table


def _required(table: Mapping[str, Any], key: str, where: str, hint: str = "") -> str:
    value = _get(table, key, str, where)
    if not value:
        raise ConfigError(f"{where}.{key}: missing{hint}")
    return value


def _get(
    table: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = None,
) -> Any:
    value = table.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{where}.{key}: expected {_type_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: expected {_type_name(kind)}, got {type(value).__name__}")
    return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"str": "a string", "int": "an integer", "float": "a number", "dict": "a table",
                        "list": "an array"}.get(k.__name__, k.__name__) for k in kinds)  # fmt: skip


def _seconds(table: Mapping[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = _get(table, key, (int, float), where)
    if value is None:
        return default
    if value < 0:
        raise ConfigError(f"{where}.{key}: must not be negative")
    return float(value)


def _provider(name: str, table: Any, env: Mapping[str, str]) -> ProviderConfig:
    where = f"providers.{name}"
    table = _table(table, _PROVIDER_KEYS, where)
    kinds = ", ".join(PROVIDER_KINDS)
    kind = _required(table, "kind", where, f" (one of {kinds})")
    if kind not in PROVIDER_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {kinds}")
    base_url = _required(table, "base_url", where)
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url: must start with http:// or https://")
    key_env = _get(table, "api_key_env", str, where)
    api_key = None
    if key_env is not None:
        api_key = env.get(key_env)
        if not api_key:
            raise ConfigError(f"{where}.api_key_env: environment variable {key_env} is not set")
    headers = _get(table, "headers", dict, where, {})
    for h, v in headers.items():
        if not isinstance(v, str):
            raise ConfigError(f"{where}.headers.{h}: expected a string")
    retries = _get(table, "max_retries", int, where, 2)
    if retries < 0:
        raise ConfigError(f"{where}.max_retries: must not be negative")
    connect = _seconds(table, "connect_timeout", where, 10.0)
    if not connect:
        raise ConfigError(f"{where}.connect_timeout: must be positive")
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        api_key_env=key_env,
        connect_timeout=connect,
        read_timeout=_seconds(table, "read_timeout", where, 300.0) or None,
        stream_idle_timeout=_seconds(table, "stream_idle_timeout", where, 60.0) or None,
        timeout=_seconds(table, "timeout", where, None) or None,
        headers=dict(headers),
        max_retries=retries,
    )


def _target(table: Any, where: str, providers: Mapping[str, ProviderConfig]) -> Target:
    provider = _required(_table(table, _TARGET_KEYS, where), "provider", where)
    if provider not in providers:
        raise ConfigError(f"{where}.provider: no provider named {provider!r}")
    return Target(provider, _get(table, "upstream_model", str, where))


def _route(index: int, table: Any, providers: Mapping[str, ProviderConfig]) -> RouteConfig:
    where = f"routes[{index}]"
    table = _table(table, _ROUTE_KEYS, where)
    model = _required(table, "model", where)
    primary = _target(
        {k: table[k] for k in ("provider", "upstream_model") if k in table}, where, providers
    )
    fallbacks = _get(table, "fallbacks", list, where, [])
    return RouteConfig(
        model=model,
        provider=primary.provider,
        upstream_model=primary.upstream_model,
        fallbacks=tuple(
            _target(t, f"{where}.fallbacks[{i}]", providers) for i, t in enumerate(fallbacks)
        ),
    )


def parse_config(data: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Validate an already-parsed TOML document."""
    raw_providers = data.get("providers", {})
    if not isinstance(raw_providers, dict):
        raise ConfigError("providers: expected a table")
    providers = {name: _provider(name, table, env) for name, table in raw_providers.items()}
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError("routes: expected an array of tables ([[routes]])")
    routes = [_route(i, t, providers) for i, t in enumerate(raw_routes)]
    tables = {k: v for k, v in data.items() if k not in ("providers", "routes")}
    return Config(providers, routes, tables)


# ---------------------------------------------------------------- defaults


def probe_ollama(base_url: str = OLLAMA_URL, timeout: float = 0.3) -> list[str] | None:
    """The model names a local Ollama serves, or None when none answers."""
    import httpx

    try:
        r = httpx.get(f"{base_url}/models", timeout=timeout)
        r.raise_for_status()
        return [m["id"] for m in r.json().get("data", []) if isinstance(m.get("id"), str)]
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None


def defaults_from_env(
    env: Mapping[str, str], probe: Callable[[], list[str] | None] | None = probe_ollama
) -> Config:
    """Providers from `OPENAI_API_KEY`/`OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`
    (and `ANTHROPIC_BASE_URL`) and a local Ollama, when `probe` finds one.
    `RESPGATE_NO_OLLAMA_PROBE=1` (or `probe=None`) skips the probe."""
    cfg = Config()
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        cfg.providers["openai"] = ProviderConfig(
            "openai", "responses", env.get("OPENAI_BASE_URL", OPENAI_URL).rstrip("/"),
            api_key=env.get("OPENAI_API_KEY"), api_key_env="OPENAI_API_KEY",
        )  # fmt: skip
        cfg.routes += [RouteConfig(glob, "openai") for glob in OPENAI_MODEL_GLOBS]
    if env.get("ANTHROPIC_API_KEY"):
        cfg.providers["anthropic"] = ProviderConfig(
            "anthropic", "anthropic", env.get("ANTHROPIC_BASE_URL", ANTHROPIC_URL).rstrip("/"),
            api_key=env["ANTHROPIC_API_KEY"], api_key_env="ANTHROPIC_API_KEY",
        )  # fmt: skip
        cfg.routes.append(RouteConfig("claude-*", "anthropic"))
    if probe is not None and env.get("RESPGATE_NO_OLLAMA_PROBE", "") in ("", "0"):
        models = probe()
        if models is not None:
            cfg.providers["ollama"] = ProviderConfig("ollama", "chat_completions", OLLAMA_URL)
            cfg.routes += [RouteConfig(m, "ollama") for m in models]
    return cfg


def load_config(
    path: str | None,
    env: Mapping[str, str] | None = None,
    *,
    probe: Callable[[], list[str] | None] | None = probe_ollama,
) -> Config:
    """The configuration from the TOML file at `path`, or from `env` when `path` is None."""
    env = os.environ if env is None else env
    if path is None:
        return defaults_from_env(env, probe)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    return parse_config(data, env)
