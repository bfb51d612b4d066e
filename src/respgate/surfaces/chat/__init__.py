"""The Chat Completions surface (`POST /v1/chat/completions`): the request translated into
a Responses `CreateRequest` (`request.py`), the chunk builder fed the run's signals
(`builder.py`) and the strict chunk-stream checker (`validate.py`)."""
