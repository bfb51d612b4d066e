"""What the agent CLI tests share (Codex CLI, Claude Code): whether an npm-installed CLI
runs here, a respgate config routing a model to the reasoning Chat Completions upstream,
and respgate's count of finished responses by transport."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def npm_bin(folder: str, name: str) -> Path:
    """The executable `name` that `npm ci` in tests/contract/`folder` installs."""
    return HERE / folder / "node_modules" / ".bin" / name


def runs(cli: Path, timeout: float) -> bool:
    """Does `cli --version` succeed (installed, with its native binary)?"""
    try:
        done = subprocess.run([str(cli), "--version"], capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def reasoner_config(path: Path, upstream_url: str, extra: str = "") -> Path:
    """A respgate config at `path`: model `reasoner` on the Chat Completions upstream at
    `upstream_url` (provider `thinker`, with `extra` lines in its table)."""
    path.write_text(
        f'[providers.thinker]\nkind = "chat_completions"\nbase_url = "{upstream_url}"\n'
        f"{extra}"
        '[[routes]]\nmodel = "reasoner"\nprovider = "thinker"\n'
    )
    return path


def responses_by_transport(base_url: str, model: str) -> dict[str, float]:
    """`respgate_responses_total` for `model`, as {"<transport>:<status>": count}."""
    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    pattern = (
        rf'respgate_responses_total\{{model="{model}",status="(\w+)",transport="(\w+)"\}} (\S+)'
    )
    for status, transport, value in re.findall(pattern, metrics):
        counts[f"{transport}:{status}"] = float(value)
    return counts
