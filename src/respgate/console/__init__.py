"""The web console (`[console] enabled = true`): live runs through the engine's tap
(`tap.py`), stored responses, a playground and the checker, served at `/console` by
`api.py` as plain HTML/CSS/JS modules (`static/`, no build step, no CDN)."""

from .api import console_routes, redact
from .tap import Tap

__all__ = ["Tap", "console_routes", "redact"]
