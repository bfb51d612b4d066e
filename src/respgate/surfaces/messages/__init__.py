"""The Anthropic Messages surface (`POST /v1/messages`): the request translated into a
`CreateRequest` (`request.py`), the neutral signals written as Messages stream events
(`builder.py`), errors in Anthropic's shape (`errors.py`) and the strict stream checker
(`validate.py`)."""
