"""One response from request to terminal event.

`Engine.create()` routes the request, loads the conversation context, opens
the provider (upstream failures before this point are plain HTTP errors), and
returns a `Run`: a producer task that feeds the provider's signals to the
`ResponseBuilder` and buffers the events for a transport to drain. The record
is persisted before the terminal event is released. Every run ends with
exactly one terminal event, whatever happens: upstream truncation, an
exception, a client disconnect, or server shutdown.

One module per concern, `Engine` the façade the server uses:

    core.py      Engine: admission, create (foreground and background runs with
                 their event log), compaction, shutdown
    run.py       Run and EventSource (a response in flight), Replay, StartRecord
    context.py   the model context: chain or conversation, item references,
                 sealed items opened, the compaction call
    stored.py    stored responses: retrieve, replay, delete, list, cancel
"""

from .core import Engine, Queued
from .run import SHUTDOWN, Event, EventSource, Replay, Run

__all__ = ["SHUTDOWN", "Engine", "Event", "EventSource", "Queued", "Replay", "Run"]
