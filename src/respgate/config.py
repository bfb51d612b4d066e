"""respgate's TOML configuration: typed sections, strict decoding, environment defaults.

Every table and key of the file is declared here as a msgspec `Struct`
(`forbid_unknown_fields`); `respgate config example` prints a commented file
with all of them (`respgate.example.toml`, shipped in the package).
`load_config(path, env)` decodes the whole file into a `Config`:

    config.providers: dict[str, ProviderConfig]   # [providers.NAME], keys resolved
    config.routes:    list[RouteConfig]           # [[routes]]
    config.server, config.store, config.limits, config.telemetry   # [server], ...
    config.keys:      list[KeyConfig]             # [[keys]]
    config.mcp:       McpConfig                   # [mcp], named servers' headers resolved
    config.prices:    dict[str, PriceConfig]      # [prices."gpt-4o*"]

An unknown table or key, a wrong type or a value that cannot work raises
`ConfigError` with one line naming the key path and, for a misspelt name, the
nearest known one: `sever: unknown table (did you mean "server"?)`,
`server.cors_origins: expected an array of strings, got a string`. Without a
file the providers come from the environment (`defaults_from_env`).
"""

from __future__ import annotations

import datetime
import difflib
import fnmatch
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec

from .seal import decode_key

ProviderKind = Literal["chat_completions", "anthropic", "responses"]
# Who runs a request's `mcp` tools on a route whose every provider is a native Responses
# upstream: respgate (`never`: they are not passed through) or that upstream (`responses`).
McpPassthrough = Literal["never", "responses"]
PROVIDER_KINDS: tuple[str, ...] = typing.get_args(ProviderKind)

OLLAMA_URL = "http://127.0.0.1:11434/v1"
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com/v1"
OPENAI_MODEL_GLOBS = ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "codex-*", "computer-use-*")
DEFAULT_DATA_DIR = "data"
EXAMPLE_FILE = "respgate.example.toml"

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
Price = Annotated[float, msgspec.Meta(ge=0)]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


class Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A table of the configuration file: every key declared, unknown keys refused."""


# ---------------------------------------------------------------- the sections


class ServerConfig(Section):
    cors_origins: tuple[str, ...] = ()  # origins browsers may call from; "*" for any
    allow_open: bool = False  # serve a non-loopback address without API keys
    metrics: bool = True  # GET /metrics
    log_format: Literal["text", "json"] = "text"
    max_body_bytes: NonNegative = 32 * 1024 * 1024
    max_header_bytes: NonNegative = 65536  # request line + headers; over -> 431
    max_headers: NonNegative = 100  # over -> 431
    header_timeout: Seconds = 10.0  # to receive the request line and headers
    body_timeout: Seconds = 60.0  # to receive the whole body -> 408
    max_connections: NonNegative = 0  # 0: derived from the descriptor limit
    keepalive_interval: Seconds = 15.0  # between SSE keep-alive comments
    # Key of sealed `encrypted_content` (compaction, reasoning): 32 bytes, base64.
    # "" -> RESPGATE_SEAL_KEY, else one generated once and kept in the store.
    seal_key: str = ""
    # raw reasoning event names: OpenAI's `response.reasoning_text.*` or Open Responses'
    # `response.reasoning.*` (a request's x-respgate-reasoning-events header overrides)
    reasoning_events: Literal["openai", "open_responses"] = "openai"


class StoreConfig(Section):
    enabled: bool = True
    data_dir: str = ""  # SQLite directory; "" -> RESPGATE_DATA_DIR, else ./data
    database_url: str = ""  # postgresql://...; "" -> RESPGATE_DATABASE_URL, else SQLite
    retention_days: Annotated[float, msgspec.Meta(ge=-1)] = 30.0  # -1: forever


class KeyConfig(Section):
    """One `[[keys]]` entry: a tenant and exactly one of `key`, `key_env`, `sha256`
    (checked, and the key read, by `respgate.store.keys.ApiKeys.from_config`)."""

    tenant: str
    key: str | None = None
    key_env: str | None = None
    sha256: str | None = None
    admin: bool = False  # may read /metrics and operator endpoints
    # Per-key overrides of [limits]; None: the [limits] value, 0: unlimited.
    requests_per_minute: NonNegative | None = None
    tokens_per_minute: NonNegative | None = None
    concurrent_streams: NonNegative | None = None

    def __repr__(self) -> str:  # never print a plain key
        key = "***" if self.key is not None else None
        return f"KeyConfig(tenant={self.tenant!r}, key={key}, key_env={self.key_env!r}, ...)"


class LimitsConfig(Section):
    """Defaults for every key and tenant; 0 = unlimited."""

    requests_per_minute: NonNegative = 0
    tokens_per_minute: NonNegative = 0
    concurrent_streams: NonNegative = 0
    redis_url: str = ""  # shared counters across replicas when set
    on_redis_error: Literal["open", "closed"] = "open"


class PriceConfig(Section):
    """USD per million tokens for the models a `[prices."glob"]` key matches."""

    input: Price = 0.0
    cached_input: Price | None = None  # None: priced as input
    output: Price = 0.0


class TelemetryConfig(Section):
    otlp_endpoint: str = ""  # OTLP/HTTP traces when set
    service_name: str = "respgate"


class ConsoleConfig(Section):
    enabled: bool = False  # the web console at /console and its /console/api endpoints


class ProviderTable(Section):
    """`[providers.NAME]` as written; `ProviderConfig` is the resolved provider."""

    kind: ProviderKind
    base_url: str
    api_key_env: str | None = None
    connect_timeout: Seconds = 10.0
    read_timeout: Seconds = 300.0  # 0: no limit
    timeout: Seconds = 0.0  # 0: none
    headers: dict[str, str] = {}
    max_retries: NonNegative = 2
    stream_idle_timeout: Seconds = 60.0  # 0: no limit
    send_reasoning: bool = False  # chat_completions: prior reasoning as `reasoning_content`


class Target(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where one attempt goes: a provider and the model name it knows."""

    provider: str
    upstream_model: str | None = None  # None: the requested public name


class RouteConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    model: str  # a public name or a glob
    provider: str
    upstream_model: str | None = None
    fallbacks: tuple[Target, ...] = ()

    @property
    def is_glob(self) -> bool:
        return any(c in self.model for c in "*?[")

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model) if self.is_glob else model == self.model


class McpServerTable(Section):
    """`[mcp.servers.LABEL]`: an MCP server clients name by `server_label` alone."""

    url: str
    headers: dict[str, str] = {}  # sent as written (not secrets: the file may be shared)
    headers_env: dict[str, str] = {}  # header -> the environment variable holding its value
    tenants: tuple[str, ...] = ()  # the tenants (API keys) that may use it; none: every one


class McpSection(Section):
    """`[mcp]`: the remote MCP servers the gateway runs tools on (`type: "mcp"` tools)."""

    # A client-supplied `server_url` is allowed only when it starts with one of these
    # URLs or its host is one of these hosts; none by default (no SSRF proxy).
    allowed_urls: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    servers: dict[str, McpServerTable] = {}
    list_timeout: Seconds = 10.0  # to list a server's tools
    call_timeout: Seconds = 60.0  # for one tool call
    max_steps: Annotated[int, msgspec.Meta(ge=1)] = 8  # model calls in one response
    passthrough: McpPassthrough = "never"


class ConfigFile(Section):
    """The whole file, as written."""

    providers: dict[str, ProviderTable] = {}
    routes: tuple[RouteConfig, ...] = ()
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    keys: tuple[KeyConfig, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    prices: dict[str, PriceConfig] = {}
    telemetry: TelemetryConfig = TelemetryConfig()
    console: ConsoleConfig = ConsoleConfig()
    mcp: McpSection = McpSection()


@dataclass(frozen=True, slots=True)
class McpServerConfig:
    """A named MCP server with its headers read (values never printed)."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    tenants: tuple[str, ...] = ()  # none: every tenant


@dataclass(frozen=True, slots=True)
class McpConfig:
    """`[mcp]` resolved: named servers with their headers read from the environment."""

    allowed_urls: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    servers: dict[str, McpServerConfig] = field(default_factory=dict)
    list_timeout: float = 10.0
    call_timeout: float = 60.0
    max_steps: int = 8
    passthrough: McpPassthrough = "never"


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
    send_reasoning: bool = False


@dataclass(slots=True)
class Config:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routes: list[RouteConfig] = field(default_factory=list)
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    keys: list[KeyConfig] = field(default_factory=list)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    prices: dict[str, PriceConfig] = field(default_factory=dict)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    mcp: McpConfig = field(default_factory=McpConfig)
    path: str | None = None  # the file it was read from; None: the environment


# ---------------------------------------------------------------- strict decoding
#
# msgspec decodes and refuses what does not fit, but names a dict's keys `[...]`
# in its error paths (`$.providers[...].kind`). This walk over the same Struct
# declarations checks first, so every message names the full key path in TOML
# terms and suggests the nearest known name.


def _suggest(name: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta]]:
    metas: list[msgspec.Meta] = []
    while typing.get_origin(tp) is Annotated:
        tp, *extra = typing.get_args(tp)
        metas += [m for m in extra if isinstance(m, msgspec.Meta)]
    return tp, metas


def _expected(tp: Any) -> str:
    tp, _ = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(t) for t in typing.get_args(tp) if t is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f'"{v}"' for v in typing.get_args(tp))
    if origin in (tuple, list):
        inner = _expected(typing.get_args(tp)[0])
        return "an array of " + inner.removeprefix("a ").removeprefix("an ") + "s"
    if origin is dict or (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return "a table"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}[tp]


def _check(value: Any, tp: Any, path: str) -> None:
    """Raise ConfigError at the first place `value` does not fit the declaration `tp`."""
    tp, metas = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # only `X | None` here; TOML has no null
        (tp,) = [t for t in typing.get_args(tp) if t is not type(None)]
        _check(value, tp, path)
        return
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        _check_struct(value, tp, path)
        return
    where = path or "the file"
    if origin is Literal:
        options = typing.get_args(tp)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected {_expected(tp)}, got {_got(value)}")
        if value not in options:
            raise ConfigError(
                f"{where}: {value!r} is not {_expected(tp)}{_suggest(value, options)}"
            )
        return
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_expected(tp)}, got {_got(value)}")
        for i, item in enumerate(value):
            _check(item, typing.get_args(tp)[0], f"{path}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {_got(value)}")
        for key, item in value.items():
            _check(item, typing.get_args(tp)[1], f"{path}.{_key(key)}")
        return
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool)
        if tp is float
        else isinstance(value, tp) and (tp is bool or not isinstance(value, bool))
    )
    if not ok:
        raise ConfigError(f"{where}: expected {_expected(tp)}, got {_got(value)}")
    for meta in metas:
        if meta.ge is not None and value < meta.ge:
            bound = "must not be negative" if meta.ge == 0 else f"must be at least {meta.ge}"
            raise ConfigError(f"{where}: {bound}")


def _key(name: str) -> str:
    """A TOML key as written in a path: bare when it can be, else quoted."""
    bare = name and all(c.isalnum() or c in "-_" for c in name)
    return name if bare else f'"{name}"'


def _check_struct(value: Any, cls: type[msgspec.Struct], path: str) -> None:
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a table, got {_got(value)}")
    for name in value:
        if name not in fields:
            what = "table" if _is_table(value[name]) else "key"
            where = f"{path}.{_key(name)}" if path else _key(name)
            raise ConfigError(f"{where}: unknown {what}{_suggest(name, fields)}")
    for name, info in fields.items():
        if name in value:
            _check(value[name], info.type, f"{path}.{name}" if path else name)
        elif info.required:
            raise ConfigError(f"{path}.{name}: missing")


# ---------------------------------------------------------------- meaning


def _url(value: str, where: str, schemes: tuple[str, ...]) -> None:
    if value and not value.startswith(tuple(f"{s}://" for s in schemes)):
        names = " or ".join(f"{s}://" for s in schemes)
        raise ConfigError(f"{where}: must start with {names}")


def _provider(name: str, table: ProviderTable, env: Mapping[str, str]) -> ProviderConfig:
    where = f"providers.{_key(name)}"
    if not table.base_url:
        raise ConfigError(f"{where}.base_url: missing")
    _url(table.base_url, f"{where}.base_url", ("http", "https"))
    api_key = None
    if table.api_key_env is not None:
        api_key = env.get(table.api_key_env)
        if not api_key:
            raise ConfigError(
                f"{where}.api_key_env: environment variable {table.api_key_env} is not set"
            )
    if not table.connect_timeout:
        raise ConfigError(f"{where}.connect_timeout: must be positive")
    return ProviderConfig(
        name=name,
        kind=table.kind,
        base_url=table.base_url.rstrip("/"),
        api_key=api_key,
        api_key_env=table.api_key_env,
        connect_timeout=table.connect_timeout,
        read_timeout=table.read_timeout or None,
        timeout=table.timeout or None,
        headers=dict(table.headers),
        max_retries=table.max_retries,
        stream_idle_timeout=table.stream_idle_timeout or None,
        send_reasoning=table.send_reasoning,
    )


def _route(index: int, route: RouteConfig, providers: Mapping[str, ProviderConfig]) -> None:
    where = f"routes[{index}]"
    if not route.model:
        raise ConfigError(f"{where}.model: missing")
    targets = [(where, route.provider)] + [
        (f"{where}.fallbacks[{i}]", t.provider) for i, t in enumerate(route.fallbacks)
    ]
    for at, provider in targets:
        if provider not in providers:
            hint = _suggest(provider, providers) or (
                " (declare it as [providers." + _key(provider) + "])"
            )
            raise ConfigError(f"{at}.provider: no provider named {provider!r}{hint}")


def _mcp(section: McpSection, env: Mapping[str, str]) -> McpConfig:
    for i, url in enumerate(section.allowed_urls):
        _url(url, f"mcp.allowed_urls[{i}]", ("http", "https"))
    servers = {}
    for label, table in section.servers.items():
        where = f"mcp.servers.{_key(label)}"
        if not table.url:
            raise ConfigError(f"{where}.url: missing")
        _url(table.url, f"{where}.url", ("http", "https"))
        headers = dict(table.headers)
        for header, variable in table.headers_env.items():
            if not env.get(variable):
                raise ConfigError(
                    f"{where}.headers_env.{_key(header)}: environment variable {variable} is not set"
                )
            headers[header] = env[variable]
        servers[label] = McpServerConfig(label, table.url, headers, table.tenants)
    return McpConfig(
        allowed_urls=section.allowed_urls,
        allowed_hosts=tuple(host.lower() for host in section.allowed_hosts),
        servers=servers,
        list_timeout=section.list_timeout,
        call_timeout=section.call_timeout,
        max_steps=section.max_steps,
        passthrough=section.passthrough,
    )


def _server(server: ServerConfig) -> None:
    if server.seal_key:
        try:
            decode_key(server.seal_key)
        except ValueError as exc:
            raise ConfigError(f"server.seal_key: {exc}") from None
    for i, origin in enumerate(server.cors_origins):
        if origin != "*":
            _url(origin, f"server.cors_origins[{i}]", ("http", "https"))


def parse_config(data: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    """Validate an already-parsed TOML document."""
    _check(dict(data), ConfigFile, "")
    try:
        file = msgspec.convert(dict(data), ConfigFile)
    except msgspec.ValidationError as exc:  # the walk above should have said it already
        raise ConfigError(str(exc)) from None
    providers = {name: _provider(name, t, env) for name, t in file.providers.items()}
    for i, route in enumerate(file.routes):
        _route(i, route, providers)
    _server(file.server)
    _url(file.store.database_url, "store.database_url", ("postgresql", "postgres"))
    _url(file.limits.redis_url, "limits.redis_url", ("redis", "rediss", "unix"))
    _url(file.telemetry.otlp_endpoint, "telemetry.otlp_endpoint", ("http", "https"))
    return Config(
        providers=providers,
        routes=list(file.routes),
        server=file.server,
        store=file.store,
        keys=list(file.keys),
        limits=file.limits,
        prices=dict(file.prices),
        telemetry=file.telemetry,
        console=file.console,
        mcp=_mcp(file.mcp, env),
    )


def example() -> str:
    """The commented example configuration shipped with the package."""
    return resources.files("respgate").joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")


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
    config = parse_config(data, env)
    config.path = path
    return config
