"""Errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.

The gateway's errors are `ApiError`s (OpenAI's status and code); this module says which
Anthropic error type each one is. The `param` an `ApiError` names is already in its message
(`Invalid 'messages[0].content'...`)."""

from __future__ import annotations

from typing import Any

from ...protocol.errors import ApiError, failure_error

# Anthropic's error type for each HTTP status (https://docs.anthropic.com/en/api/errors).
STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    if status in STATUS_TYPES:
        return STATUS_TYPES[status]
    if status == 503:
        return "overloaded_error"
    return "api_error" if status >= 500 else "invalid_request_error"


def error_object(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_body(err: ApiError) -> dict[str, Any]:
    """The body of an HTTP error answered on a Messages route."""
    return error_object(error_type(err.status), err.message)


def failure_object(code: str, message: str) -> dict[str, Any]:
    """The `error` event for a failure after the first byte: the type of the status a
    non-streaming answer would have (`protocol.errors.failure_error`)."""
    return error_object(error_type(failure_error(code, message).status), message)
