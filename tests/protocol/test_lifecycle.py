from __future__ import annotations

from pathlib import Path

from respgate.protocol.lifecycle import ITEM_TRANSITIONS, RESPONSE_TRANSITIONS, mermaid

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_diagram_is_generated_from_the_table() -> None:
    text = README.read_text()
    start = text.index("<!-- lifecycle:start -->")
    end = text.index("<!-- lifecycle:end -->")
    assert f"```mermaid\n{mermaid()}\n```" in text[start:end], (
        "run: python -m respgate.protocol.lifecycle"
    )


def test_every_transition_appears_in_the_diagram() -> None:
    diagram = mermaid()
    for (src, event), dst in RESPONSE_TRANSITIONS.items():
        assert f"{src} --> {dst}: {event}" in diagram
    assert len([line for line in diagram.splitlines() if "-->" in line]) >= len(ITEM_TRANSITIONS)
