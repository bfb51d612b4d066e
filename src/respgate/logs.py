"""Logging: text or JSON lines, and one line per response (an observer).

`configure(fmt)` sends every record (uvicorn's too, when uvicorn is started with
`log_config=None`) through one handler on stderr: `text` is the familiar
`time level logger: message key=value ...`, `json` is one JSON object per line with
`time`, `level`, `logger`, `message` and the record's fields.

`ResponseLog` logs every response once it has ended (`respgate.response`, level
INFO): id, tenant, model, provider, upstream model, status, error code, time to
first byte, duration, tokens, retries, fallbacks, cost and request id. A rejected
request (an HTTP error before the first byte) gets a line too, with its status.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Any

import orjson

from .observe import Observer, RunInfo, ToolUse
from .protocol.errors import ApiError

LOG_FORMATS = ("text", "json")

response_log = logging.getLogger("respgate.response")


def _time(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`time level logger: message` then the record's `fields` as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """`2026-12-01 12:37:30,502` (the default's shape), its date and time formatted
        once per second, not once per record."""
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(
                f"{k}={'-' if v is None else v}" for k, v in fields.items() if k != "id"
            )
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the fields, and the
    traceback (`exception`) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


def start_block(lines: list[str], fmt: str) -> str:
    """The start-up block as printed: its lines, or in JSON mode one JSON object (the
    first line as `message`, the rest as `lines`)."""
    if fmt != "json":
        return "\n".join(lines)
    record = logging.LogRecord("respgate.start", logging.INFO, __file__, 0, lines[0], None, None)
    record.fields = {"lines": lines[1:]}
    return JsonFormatter().format(record)


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route every log record through one stderr handler in format `fmt`."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    # What no format here shows is not gathered per record (the logging HOWTO's
    # "Optimization"): the caller's frame, thread, process id and process name.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)  # uvicorn's own handlers, if any, go
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    logging.captureWarnings(fmt == "json")  # Python warnings become records too
    # The MCP client's HTTP library logs every request's URL at info: the tool loop's own
    # line per listing and call (`ResponseLog.tool_used`) says what matters.
    logging.getLogger("httpx2").setLevel(max(level, logging.WARNING))


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round((end - start) * 1000, 3)


class ResponseLog(Observer):
    """One INFO line on `respgate.response` per response, at its end (and one per
    gateway-run MCP operation while it runs)."""

    def __init__(self, logger: logging.Logger = response_log) -> None:
        self.log = logger

    def rejected(self, run: RunInfo, error: ApiError) -> None:
        if self.log.isEnabledFor(logging.INFO):
            fields = self.fields(run)
            fields["http_status"] = error.status
            self.log.info("response rejected", extra={"fields": fields})

    def delivered(self, run: RunInfo) -> None:
        if self.log.isEnabledFor(logging.INFO):
            fields = self.fields(run)
            self.log.info("response %s %s", run.response_id, run.status, extra={"fields": fields})

    def tool_used(self, run: RunInfo, use: ToolUse) -> None:
        """One line per gateway-run MCP listing or call (never its headers or arguments)."""
        if self.log.isEnabledFor(logging.INFO):
            fields = {"id": run.response_id, "request_id": run.request_id, "tenant": run.tenant,
                      "mcp_server": use.server, "mcp_tool": use.tool,
                      "duration_ms": round(use.seconds * 1000, 3), "error": use.error}  # fmt: skip
            what = f"call {use.tool}" if use.tool else "listing"
            self.log.info("mcp %s %s on %s", what, use.error or "ok", use.server,
                          extra={"fields": fields})  # fmt: skip

    @staticmethod
    def fields(run: RunInfo) -> dict[str, Any]:
        usage = run.usage or {}
        return {
            "id": run.response_id,
            "request_id": run.request_id,
            "tenant": run.tenant,
            "model": run.model,
            "transport": run.transport,
            "provider": run.provider,
            "upstream_model": run.upstream_model,
            "status": run.status or "rejected",
            "error_code": run.error_code,
            "ttft_ms": _ms(run.accepted_at, run.client_first_byte_at),
            "duration_ms": _ms(run.accepted_at, run.finished_at),
            "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
            "cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens"),
            "retries": run.retries,
            "fallbacks": run.fallbacks,
            "cost_usd": run.cost,
        }
