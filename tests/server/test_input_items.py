"""`GET /v1/responses/{id}/input_items` lists canonical items as OpenAI does, whatever shape
they were sent in, and honours `include`; the openai SDK's pydantic models are the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses.response_item import ResponseItem
from pydantic import TypeAdapter

from tests.support.live import LiveServer
from tests.support.stores import sqlite_engine

ITEM = TypeAdapter(ResponseItem)
IMAGE = "data:image/png;base64,iVBORw0KGgo="
INPUT: list[dict[str, Any]] = [
    {"role": "developer", "content": "be brief"},
    {"type": "message", "role": "user", "content": "hello"},
    {"role": "assistant", "content": "earlier answer"},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": IMAGE},
        ],
    },
    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "42"},
    {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "thought"}],
        "encrypted_content": "opaque",
    },
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(sqlite_engine(tmp_path)) as live:
        yield live


def listed(server: LiveServer, params: Any = None) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        r = http.post("/v1/responses", json={"model": "echo", "input": INPUT})
        assert r.status_code == 200, r.text
        url = f"/v1/responses/{r.json()['id']}/input_items"
        page = http.get(url, params=[("order", "asc"), *(params or [])])
    assert page.status_code == 200, page.text
    return page.json()["data"]


def test_items_are_canonical(server: LiveServer) -> None:
    items = listed(server)
    for item in items:
        ITEM.validate_python(item)  # the SDK's own model of a listed item
        assert item["id"]
    developer, user, assistant, mixed, call, output, reasoning = items
    assert developer["content"] == [{"type": "input_text", "text": "be brief"}]
    assert user["content"] == [{"type": "input_text", "text": "hello"}]
    assert assistant["content"] == [
        {"type": "output_text", "text": "earlier answer", "annotations": []}
    ]
    assert {i["status"] for i in (developer, user, assistant, mixed, call, output)} == {"completed"}
    # Values only sent with `include`:
    assert mixed["content"][1] == {"type": "input_image", "detail": "auto"}
    assert "encrypted_content" not in reasoning


def test_include_adds_what_it_names(server: LiveServer) -> None:
    include = ["message.input_image.image_url", "reasoning.encrypted_content"]
    items = listed(server, [("include[]", value) for value in include])
    assert items[3]["content"][1]["image_url"] == IMAGE
    assert items[6]["encrypted_content"] == "opaque"
    # The plain `include=` form is read too.
    items = listed(server, [("include", "reasoning.encrypted_content")])
    assert items[6]["encrypted_content"] == "opaque"


def test_unknown_include_is_a_400(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response_id = http.post("/v1/responses", json={"model": "echo", "input": "x"}).json()["id"]
        r = http.get(f"/v1/responses/{response_id}/input_items", params={"include[]": "bogus"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "include[0]"


def test_the_sdk_lists_them(server: LiveServer) -> None:
    client = openai.OpenAI(api_key="k", base_url=f"{server.url}/v1")
    response = client.responses.create(model="echo", input=INPUT)  # type: ignore[arg-type]
    page = client.responses.input_items.list(
        response.id, order="asc", include=["message.input_image.image_url"]
    )
    types = [type(item).__name__ for item in page.data]
    assert types[:3] == ["ResponseInputMessageItem", "ResponseInputMessageItem",
                         "ResponseOutputMessage"]  # fmt: skip
    assert page.data[0].content[0].text == "be brief"  # type: ignore[union-attr]
    assert page.data[3].content[1].image_url == IMAGE  # type: ignore[union-attr]
