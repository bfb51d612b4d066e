"""respgate: a spec-exact OpenAI Responses API gateway."""

__version__ = "0.1.0"
