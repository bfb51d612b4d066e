"""`respgate check`: does a Responses endpoint stream correctly?

`respgate check URL` sends a battery of requests (`CASES`) and checks every
reply; `respgate check --file capture.sse` checks one captured stream. Each
stream is checked at three levels:

- SSE framing (`respgate.sse.SSEDecoder`): frames end with a blank line, no
  `id:`/`retry:` fields or data-less `event:` blocks, `event:` equal to `type`;
- the strict stream checker (`respgate.protocol.validate`): order, indices,
  stable ids, deltas concatenating to the done text, one terminal event, `[DONE]`;
- the Open Responses OpenAPI schemas bundled in `respgate/protocol/spec/`
  (jsonschema).

The report is a table of rules, each passed or failed with its offending
events; `--json` prints it for CI; the exit code is 1 on any failure.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import httpx
import jsonschema

from .endpoint import api_key, endpoint_problem
from .protocol.lifecycle import OPEN_RESPONSES_NAMES
from .protocol.validate import RESPONSE_FIELDS, RULES, StreamChecker
from .sse import SSEDecoder

Json = dict[str, Any]

CHECK_RULES = {
    "http": "the endpoint answers 200 with text/event-stream (or JSON when not streaming)",
    "sse_framing": "every frame ends with a blank line; no id:, retry: or data-less event: blocks",
    "event_name": "each frame's `event:` line equals its data's `type`",
    **RULES,
    "schema": "every event and Response validates against the Open Responses schema",
    "expectation": "the case's outcome (tool call, incomplete, 4xx with param, ...)",
}


@dataclass(slots=True)
class Finding:
    """One failed check: which rule, in which case, at which event."""

    rule: str
    case: str
    message: str
    index: int = -1  # position of the event in the stream (-1: the stream as a whole)
    event_type: str | None = None

    def __str__(self) -> str:
        where = f"#{self.index} {self.event_type}" if self.index >= 0 else "stream"
        return f"{self.case} {where}: {self.message}"


@dataclass(slots=True)
class Reply:
    """What one request got: the status, the events (or JSON body), and the findings."""

    status_code: int = 0
    events: list[Json | str] = field(default_factory=list)
    body: Any = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def response(self) -> Json | None:
        """The final Response: the terminal event's, or a non-streaming body."""
        for event in reversed(self.events):
            if isinstance(event, dict) and event.get("type") in _TERMINALS:
                return event.get("response")
        return self.body if isinstance(self.body, dict) and "output" in self.body else None


@dataclass(slots=True)
class CaseResult:
    name: str
    description: str
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass(slots=True)
class Report:
    target: str
    cases: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    def rules(self) -> list[tuple[str, str, list[Finding]]]:
        """(rule, description, findings) for every rule, in table order."""
        findings = [f for c in self.cases for f in c.findings]
        return [(r, d, [f for f in findings if f.rule == r]) for r, d in CHECK_RULES.items()]

    def to_json(self) -> Json:
        return {
            "target": self.target,
            "passed": self.passed,
            "rules": [
                {"rule": r, "description": d, "passed": not fs, "findings": [asdict(f) for f in fs]}
                for r, d, fs in self.rules()
            ],
            "cases": [
                {
                    "name": c.name,
                    "description": c.description,
                    "passed": c.passed,
                    "skipped": c.skipped,
                }
                for c in self.cases
            ],
        }


_TERMINALS = ("response.completed", "response.incomplete", "response.failed")


# ------------------------------------------------------------------ one stream


def check_stream(chunks: Iterable[bytes], case: str, *, require_done: bool = True) -> Reply:
    """Decode and check one SSE body given as chunks (any split)."""
    reply = Reply(status_code=200)
    decoder = SSEDecoder()
    checker = StreamChecker(require_done=require_done)
    index = 0

    def flag(rule: str, message: str, event_type: str | None = None, at: int = -1) -> None:
        reply.findings.append(Finding(rule, case, message, at, event_type))

    for chunk in chunks:
        for sse in decoder.feed(chunk):
            event: Json | str
            if sse.data == "[DONE]":
                event = "[DONE]"
            else:
                try:
                    event = json.loads(sse.data)
                except ValueError:
                    event = sse.data
            if isinstance(event, dict):
                if sse.event != event.get("type"):
                    flag(
                        "event_name",
                        f"event: {sse.event!r} but type {event.get('type')!r}",
                        event.get("type"),
                        index,
                    )
                for message in schema_errors(event):
                    flag("schema", message, event.get("type"), index)
            reply.events.append(event)
            checker.feed(event)
            index += 1
    decoder.close()
    if decoder.incomplete:
        flag("sse_framing", "the body ends inside a frame (no terminating blank line)")
    if decoder.last_event_id:
        flag(
            "sse_framing",
            "id: fields are sent (clients then dispatch empty events on stray blank lines)",
        )
    if decoder.retry is not None:
        flag("sse_framing", "a retry: field is sent")
    if decoder.dataless_events:
        flag("sse_framing", f"{decoder.dataless_events} event: block(s) without data")
    for v in checker.close():
        reply.findings.append(Finding(v.rule, case, v.message, v.index, v.event_type))
    return reply


# ------------------------------------------------------------------ schemas


@functools.cache
def _spec() -> Json:
    text = (
        resources.files("respgate.protocol")
        .joinpath("spec/openresponses-openapi-2026-04-24.json")
        .read_text()
    )
    return json.loads(text)


@functools.cache
def _validator(schema_name: str) -> Any:
    spec = _spec()
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    )


# OpenAI's names for raw reasoning text; Open Responses calls the same events response.reasoning.*
SPEC_EVENT_NAMES = {openai: spec for spec, openai in OPEN_RESPONSES_NAMES.items()}


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Event type -> schema name, read from the spec (`*StreamingEvent` with a one-value `type` enum)."""
    spec = _spec()
    names: dict[str, str] = {}
    for name, schema in spec["components"]["schemas"].items():
        enum = schema.get("properties", {}).get("type", {}).get("enum", [])
        if name.endswith("StreamingEvent") and len(enum) == 1:
            names[enum[0]] = name
    return names


def spec_event_type(event_type: str) -> str:
    return SPEC_EVENT_NAMES.get(event_type, event_type)


def has_schema(event_type: str) -> bool:
    return spec_event_type(event_type) in _event_schemas()


def schema_errors(event: Json) -> list[str]:
    """Schema violations of one event (none for types the spec does not define)."""
    spec_type = spec_event_type(event.get("type"))  # type: ignore[arg-type]
    name = _event_schemas().get(spec_type)
    if name is None:
        return []
    return [
        _schema_message(e)
        for e in _validator(name).iter_errors(_spec_view(dict(event, type=spec_type)))
    ]


def response_schema_errors(response: Json) -> list[str]:
    return [
        _schema_message(e) for e in _validator("ResponseResource").iter_errors(_spec_view(response))
    ]


def _spec_view(value: Any) -> Any:
    """What of an event or Response (or any value in one) the published schema can judge
    (a copy):
    - what the spec does not define is left out: items of other types (OpenAI's
      hosted-tool items, custom tool calls, MCP items) and annotations of other types
      (`file_citation`, `container_file_citation`, ...), from lists, and as null where
      one stands alone (an event's `item` or `annotation`, which the schema allows); the
      stream checker still follows their lifecycle;
    - a Response's `text.format.schema` is null: the published schema declares
      `JsonSchemaResponseFormat.schema` null-only, so a Response that echoes a real JSON
      schema could never validate."""
    if isinstance(value, list):
        return [_spec_view(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    response = value.get("object") == "response"
    for key, v in value.items():
        known = _spec_types(key, response)
        if known is not None and isinstance(v, dict) and v.get("type") not in known:
            out[key] = None  # a lone item or annotation of another type
        elif known is not None and isinstance(v, list):
            out[key] = [
                _spec_view(e) for e in v if not isinstance(e, dict) or e.get("type") in known
            ]
        else:
            out[key] = _spec_view(v)
    fmt = (out.get("text") or {}).get("format") if response else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["text"] = {**out["text"], "format": {**fmt, "schema": None}}
    return out


def _spec_types(key: str, in_response: bool) -> frozenset[str] | None:
    """The types the spec defines for what `key` holds (None: not a typed union)."""
    if key == "item" or (key == "output" and in_response):
        return _union_types("ItemField")
    if key in ("annotation", "annotations"):
        return _union_types("Annotation")
    return None


@functools.cache
def _union_types(name: str) -> frozenset[str]:
    """The `type` values of the members of the spec's union schema `name`."""
    schemas = _spec()["components"]["schemas"]
    types: set[str] = set()
    for member in schemas[name]["oneOf"]:
        schema = schemas[member["$ref"].rsplit("/", 1)[1]]
        types.update(schema.get("properties", {}).get("type", {}).get("enum", []))
    return frozenset(types)


def _schema_message(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"${path}: {error.message[:200]}"


# ------------------------------------------------------------------ the battery

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city name."}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
LONG_PROMPT = (
    "Write a long, detailed story of at least five hundred words about a lighthouse keeper "
    "who finds a message in a bottle, with many characters, places and twists in the plot, "
    "and do not stop early."
)


@dataclass(frozen=True, slots=True)
class Case:
    """One request of the battery.

    `body(model, earlier)` builds the request from the replies of earlier cases
    (None: skip, a needed earlier case failed); `expect(reply, earlier)` returns
    what is wrong with a 200 reply. `optional` cases are skipped on a 4xx (the
    model does not offer the feature); `invalid` cases must get a 4xx.
    """

    name: str
    description: str
    body: Callable[[str, dict[str, Reply]], Json | None]
    expect: Callable[[Reply, dict[str, Reply]], list[str]]
    stream: bool = True
    optional: bool = False
    invalid: bool = False


def _output_of(reply: Reply, item_type: str) -> list[Json]:
    response = reply.response or {}
    return [
        i
        for i in response.get("output") or []
        if isinstance(i, dict) and i.get("type") == item_type
    ]


def _text(reply: Reply) -> str:
    return "".join(
        p.get("text", "")
        for m in _output_of(reply, "message")
        for p in m.get("content") or []
        if p.get("type") == "output_text"
    )


def _status(reply: Reply, status: str = "completed") -> list[str]:
    got = (reply.response or {}).get("status")
    return [] if got == status else [f"status {got!r}, expected {status!r}"]


def _completed_text(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    return _status(reply) + ([] if _text(reply) else ["no output_text in the final Response"])


def _instructions(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    got = (reply.response or {}).get("instructions")
    wrong = [] if got == "Answer in one short sentence." else [f"instructions not echoed: {got!r}"]
    return _completed_text(reply, earlier) + wrong


def _previous_body(model: str, earlier: dict[str, Reply]) -> Json | None:
    first = (earlier["text"].response or {}).get("id") if "text" in earlier else None
    return (
        {"model": model, "input": "Now say it again, differently.", "previous_response_id": first}
        if first
        else None
    )


def _previous(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    expected = (earlier["text"].response or {}).get("id")
    got = (reply.response or {}).get("previous_response_id")
    wrong = [] if got == expected else [f"previous_response_id {got!r}, expected {expected!r}"]
    return _completed_text(reply, earlier) + wrong


def _tool_call(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    calls = _output_of(reply, "function_call")
    if not calls:
        return ["no function_call item in the output"]
    problems = []
    for call in calls:
        try:
            arguments = json.loads(call.get("arguments") or "")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            problems.append(
                f"arguments of {call.get('name')!r} are not a JSON object: {call.get('arguments')!r}"
            )
    streamed = [
        e
        for e in reply.events
        if isinstance(e, dict) and e.get("type") == "response.function_call_arguments.delta"
    ]
    if not streamed:
        problems.append("the arguments were not streamed (no function_call_arguments.delta)")
    return problems


def _round_trip_body(model: str, earlier: dict[str, Reply]) -> Json | None:
    calls = _output_of(earlier["tool_call"], "function_call") if "tool_call" in earlier else []
    if not calls:
        return None
    call = calls[0]
    return {
        "model": model,
        "tools": [WEATHER_TOOL],
        "input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call["call_id"],
                "name": call["name"],
                "arguments": call["arguments"],
            },
            {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": '{"temperature_c": 21, "sky": "clear"}',
            },
        ],
    }


def _incomplete(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    reason = ((reply.response or {}).get("incomplete_details") or {}).get("reason")
    wrong = [] if reason == "max_output_tokens" else [f"incomplete_details.reason {reason!r}"]
    return _status(reply, "incomplete") + wrong


def _reasoning(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    return _status(reply)


def _invalid(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    if not 400 <= reply.status_code < 500:
        return [f"HTTP {reply.status_code}, expected a 4xx"]
    if not isinstance(error, dict):
        return ['the body is not {"error": {...}}']
    missing = [k for k in ("message", "type", "param", "code") if k not in error]
    return ([f"error lacks {missing}"] if missing else []) + (
        [] if error.get("param") else ["error.param is empty"]
    )


CASES: tuple[Case, ...] = (
    Case(
        "text",
        "plain text",
        lambda m, e: {"model": m, "input": "Say hello in five words."},
        _completed_text,
    ),
    Case(
        "instructions",
        "system prompt (instructions)",
        lambda m, e: {
            "model": m,
            "instructions": "Answer in one short sentence.",
            "input": "What is SSE?",
        },
        _instructions,
    ),
    Case(
        "multi_turn",
        "earlier turns in the input",
        lambda m, e: {
            "model": m,
            "input": [
                {"role": "user", "content": "My name is Ada."},
                {"role": "assistant", "content": "Hello Ada, nice to meet you."},
                {"role": "user", "content": "What is my name?"},
            ],
        },
        _completed_text,
    ),
    Case("previous_response_id", "a follow-up by previous_response_id", _previous_body, _previous),
    Case(
        "non_streaming",
        "stream: false returns the Response",
        lambda m, e: {"model": m, "input": "Say hello."},
        _completed_text,
        stream=False,
    ),
    Case(
        "tool_call",
        "a tool call with streamed arguments",
        lambda m, e: {
            "model": m,
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "input": "What is the weather in Paris?",
        },
        _tool_call,
    ),
    Case(
        "tool_round_trip",
        "the tool output sent back gives an answer",
        _round_trip_body,
        _completed_text,
    ),
    Case(
        "incomplete",
        "max_output_tokens ends incomplete",
        lambda m, e: {"model": m, "input": LONG_PROMPT, "max_output_tokens": 16},
        _incomplete,
    ),
    Case(
        "reasoning",
        "reasoning (skipped if the model has none)",
        lambda m, e: {
            "model": m,
            "input": "Is 91 prime?",
            "reasoning": {"effort": "low", "summary": "auto"},
        },
        _reasoning,
        optional=True,
    ),
    Case(
        "invalid_input",
        "invalid input gives a 4xx with param",
        lambda m, e: {"model": m, "input": 42},
        _invalid,
        invalid=True,
    ),
)


def _send(http: httpx.Client, url: str, body: Json, case: Case, require_done: bool) -> Reply:
    if case.stream:
        with http.stream(
            "POST", url, json={**body, "stream": True}, headers={"accept": "text/event-stream"}
        ) as r:
            content_type = r.headers.get("content-type", "")
            if r.status_code == 200 and content_type.startswith("text/event-stream"):
                return check_stream(r.iter_bytes(), case.name, require_done=require_done)
            return Reply(r.status_code, body=_json(r.read()))
    r = http.post(url, json={**body, "stream": False})
    reply = Reply(r.status_code, body=_json(r.content))
    if r.status_code == 200 and isinstance(reply.body, dict):
        missing = [k for k in RESPONSE_FIELDS if k not in reply.body]
        if missing:
            reply.findings.append(
                Finding("response_object", case.name, f"missing fields {missing}")
            )
        for message in response_schema_errors(reply.body):
            reply.findings.append(Finding("schema", case.name, message))
    elif r.status_code == 200:
        reply.findings.append(Finding("http", case.name, "the body is not a JSON object"))
    return reply


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def _error_message(reply: Reply) -> str:
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else reply.body
    return f"HTTP {reply.status_code}: {str(message)[:200]}"


def run_case(
    http: httpx.Client,
    url: str,
    model: str,
    case: Case,
    earlier: dict[str, Reply],
    require_done: bool,
) -> CaseResult:
    result = CaseResult(case.name, case.description)
    body = case.body(model, earlier)
    if body is None:
        result.skipped = "an earlier case it builds on failed"
        return result
    try:
        reply = _send(http, url, body, case, require_done)
    except httpx.HTTPError as exc:
        result.findings.append(Finding("http", case.name, f"{type(exc).__name__}: {exc}"))
        return result
    if case.invalid:
        result.findings += [
            Finding("expectation", case.name, m) for m in case.expect(reply, earlier)
        ]
        return result
    if reply.status_code != 200:
        if case.optional and 400 <= reply.status_code < 500:
            result.skipped = _error_message(reply)
        else:
            result.findings.append(Finding("http", case.name, _error_message(reply)))
        return result
    if reply.status_code == 200 and not reply.events and case.stream:
        result.findings.append(Finding("http", case.name, "no events"))
    result.findings += reply.findings
    if case.optional and not _output_of(reply, "reasoning"):
        result.skipped = "the model sent no reasoning item"
    result.findings += [Finding("expectation", case.name, m) for m in case.expect(reply, earlier)]
    earlier[case.name] = reply  # later cases build on it even if it broke a rule
    return result


def check_url(
    base_url: str,
    *,
    model: str = "echo",
    key: str | None = None,
    timeout: float = 60.0,
    require_done: bool = True,
    cases: Iterable[Case] = CASES,
) -> Report:
    """Run the battery against `base_url` (the URL before `/responses`)."""
    url = base_url.rstrip("/").removesuffix("/responses") + "/responses"
    headers = {"authorization": f"Bearer {key}"} if key else {}
    earlier: dict[str, Reply] = {}
    with httpx.Client(timeout=timeout, headers=headers) as http:
        results = [run_case(http, url, model, case, earlier, require_done) for case in cases]
    return Report(url, results)


def check_file(path: str, *, require_done: bool = True) -> Report:
    """Check one captured SSE body offline."""
    with open(path, "rb") as f:
        reply = check_stream([f.read()], "file", require_done=require_done)
    result = CaseResult("file", path, reply.findings)
    if not reply.events:
        result.findings.append(Finding("sse_framing", "file", "no events in the file"))
    return Report(path, [result])


# ------------------------------------------------------------------ command


def render(report: Report, *, console: Any = None) -> None:
    """The report for a terminal: the cases, the rules, then each failed rule's offending events."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    cases = Table(title=f"respgate check {report.target}", title_justify="left")
    for column in ("case", "result", "what"):
        cases.add_column(column)
    for c in report.cases:
        mark = (
            "[red]FAIL[/]" if c.findings else "[yellow]skip[/]" if c.skipped else "[green]pass[/]"
        )
        cases.add_row(
            c.name, mark, c.description + (f" [dim]({c.skipped})[/]" if c.skipped else "")
        )
    console.print(cases)
    rules = Table(title="rules", title_justify="left")
    for column in ("rule", "result", "checks"):
        rules.add_column(column)
    for rule, description, findings in report.rules():
        rules.add_row(
            rule, f"[red]FAIL ({len(findings)})[/]" if findings else "[green]pass[/]", description
        )
    console.print(rules)
    for rule, _, findings in report.rules():
        if findings:
            console.print(f"[red]{rule}[/]:")
            for f in findings[:10]:
                console.print(f"  {f}", markup=False)
            if len(findings) > 10:
                console.print(f"  ... {len(findings) - 10} more")
    failed = sum(1 for c in report.cases if c.findings)
    skipped = sum(1 for c in report.cases if c.skipped and not c.findings)
    summary = f"{len(report.cases)} cases, {failed} failed, {skipped} skipped"
    console.print(f"[red]FAILED[/]: {summary}" if failed else f"[green]PASSED[/]: {summary}")


def run(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.file:
        try:
            report = check_file(args.file, require_done=not args.no_done)
        except OSError as exc:
            return _usage_error(f"cannot read {args.file} ({exc.strerror or exc})")
    elif args.url:
        problem = endpoint_problem(args.url, timeout=min(args.timeout, 10.0))
        if problem:
            return _usage_error(problem)
        report = check_url(
            args.url,
            model=args.model,
            key=api_key(args.key),
            timeout=args.timeout,
            require_done=not args.no_done,
        )
    else:
        return _usage_error("give a URL or --file")
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        render(report)
    return 0 if report.passed else 1


def _usage_error(message: str) -> int:
    print(f"respgate check: {message}", file=sys.stderr)
    return 2


def add_parser(sub: Any) -> None:
    """Register `respgate check` on the CLI's subparsers."""
    p = sub.add_parser("check", help="check that a Responses endpoint streams correctly")
    p.add_argument("url", nargs="?", help="base URL of the endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--file", help="check a captured SSE body instead")
    p.add_argument("--model", default="echo")
    p.add_argument(
        "--key", default=None, help="API key (default: $RESPGATE_API_KEY, else $OPENAI_API_KEY)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument(
        "--no-done", action="store_true", help="do not require data: [DONE] (OpenAI sends none)"
    )
    p.set_defaults(func=run)
