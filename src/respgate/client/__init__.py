"""The respgate Python client for any Responses API endpoint.

from respgate.client import Client

with Client("http://127.0.0.1:8000/v1", api_key="...") as client:
    with client.stream(model="echo", input="Hello") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                print(event.delta, end="", flush=True)
        result = stream.final()
    print(result.status, result.usage)
"""

from ._core import StreamState
from .accumulate import Accumulator, Result, ToolCall, parse_arguments
from .errors import ResponseFailedError, ResponsesError, StatusError, StreamError
from .events import Event, UnknownEvent, decode_event
from .http import AsyncClient, AsyncStream, Client, Stream

__all__ = [
    "Accumulator",
    "AsyncClient",
    "AsyncStream",
    "Client",
    "Event",
    "ResponseFailedError",
    "ResponsesError",
    "Result",
    "StatusError",
    "Stream",
    "StreamError",
    "StreamState",
    "ToolCall",
    "UnknownEvent",
    "decode_event",
    "parse_arguments",
]
