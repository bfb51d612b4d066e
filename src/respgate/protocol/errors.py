"""Errors as values: one type for every error respgate reports.

An `ApiError` maps to an HTTP error body before the first byte is sent and to
`error` + `response.failed` after it; both mappings live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# OpenAI error `type` for each HTTP status we produce.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "upstream_error",
}


@dataclass(slots=True)
class ApiError(Exception):
    status: int
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )

    def body(self) -> dict:
        """The OpenAI error body: `{"error": {message, type, param, code}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


# Characters of client input an error message quotes at most (a 10 MB `model` must not
# come back as a 10 MB error).
QUOTE_LIMIT = 64


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` cut to `limit` characters (marked with `…`): client input in messages and params."""
    return text if len(text) <= limit else f"{text[:limit]}…"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`value` quoted for an error message, `'like this'`, cut to `limit` characters."""
    return f"'{shorten(value if isinstance(value, str) else repr(value), limit)}'"


def invalid(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, code=code, param=param)


def not_found(message: str, code: str, param: str | None = None) -> ApiError:
    return ApiError(404, message, code=code, param=param)


def previous_response_not_found(response_id: str) -> ApiError:
    """An unknown, deleted or other tenant's `previous_response_id` (all look the same)."""
    return not_found(
        f"Previous response with id {quote(response_id)} not found.",
        "previous_response_not_found",
        "previous_response_id",
    )


def invalid_api_key() -> ApiError:
    return ApiError(
        401,
        "Incorrect or missing API key. Send `Authorization: Bearer <key>`.",
        code="invalid_api_key",
    )


# The codes OpenAI's Response object allows in `error.code` (the openai SDK types
# it as a closed set). A failure with any other code keeps its specific code in
# the `error` event and reports `server_error` in the Response object.
RESPONSE_ERROR_CODES = frozenset(
    {
        "server_error",
        "rate_limit_exceeded",
        "invalid_prompt",
        "invalid_image",
        "invalid_image_format",
        "invalid_base64_image",
        "invalid_image_url",
        "image_too_large",
        "image_too_small",
        "image_parse_error",
        "image_content_policy_violation",
        "invalid_image_mode",
        "image_file_too_large",
        "unsupported_image_media_type",
        "empty_image_file",
        "failed_to_download_image",
        "image_file_not_found",
    }
)


def response_error(code: str, message: str) -> dict[str, str]:
    """The Response object's `error` for a failure with `code`."""
    return {"code": code if code in RESPONSE_ERROR_CODES else "server_error", "message": message}


# The HTTP status of a run that failed after it started, when its surface answers without
# streaming and must not say 200 (Chat Completions, Messages): by the failure's code, else
# 502 (the upstream failed).
FAILURE_STATUS = {
    "server_error": 500,
    "upstream_timeout": 504,
    "rate_limit_exceeded": 429,
    "upstream_overloaded": 529,
    "invalid_prompt": 400,
}


def failure_error(code: str, message: str) -> ApiError:
    """A run's failure (a `Failure` signal's code and message) as the HTTP error a
    non-streaming answer gives."""
    return ApiError(FAILURE_STATUS.get(code, 502), message, code=code)
