"""The console in real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium) against a real server: a slow `echo` stream's deltas appear before it ends, a failed
stream's error is highlighted, the playground sends and shows its run, stored responses are
listed, opened and deleted, the check view shows the rule table, and tenant B sees nothing of
tenant A's. Screenshots go to `artifacts/console/` (not committed); with
RESPGATE_DOCS_SCREENSHOT=1 the timeline's is also written to docs/console.png (the README's).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.console.support import (
    A_KEY,
    B_KEY,
    SLOW,
    A,
    background_with_a_broken_log,
    console_server,
)
from tests.support.live import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if os.environ.get("RESPGATE_REQUIRE_BROWSER"):  # set by scripts/test.sh once chromium is here
    assert CHROMIUM and DRIVER, "RESPGATE_REQUIRE_BROWSER is set but chromium is missing"
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed"
)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(browser: Any, tmp_path: Path) -> Iterator[LiveServer]:
    with console_server(tmp_path) as live:
        yield live
        browser.get("about:blank")  # closes the page's streams, so the server stops at once


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait(driver: Any, until: Callable[[Any], Any], seconds: float = 20) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(until)


def open_console(driver: Any, server: LiveServer, key: str, view: str = "live") -> None:
    driver.get(f"{server.url}/console#/{view}")
    field = wait(driver, lambda d: d.find_element(By.ID, "key"))
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait(driver, lambda d: "in flight" in d.find_element(By.ID, "in-flight").text)


def text_of(driver: Any, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


class Streaming(threading.Thread):
    """One streamed request read to its end in a thread; `ended` is set when it has been."""

    def __init__(self, server: LiveServer, metadata: dict[str, str], key: dict[str, str] = A):
        super().__init__(daemon=True)
        self.url, self.key = server.url, key
        self.body = {"model": "echo", "input": "watch me stream", "stream": True,
                     "metadata": metadata}  # fmt: skip
        self.ended = threading.Event()

    def run(self) -> None:
        with httpx.stream("POST", f"{self.url}/v1/responses", json=self.body, headers=self.key,
                          timeout=60) as r:  # fmt: skip
            r.read()
        self.ended.set()


def watch_first_run(driver: Any, screenshot: str | None = None) -> None:
    first = "[data-testid=live] tr[data-id]"
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, first))
    if screenshot:
        shot(driver, screenshot)

    def click(d: Any) -> bool:  # the list is redrawn at every change: find the row anew
        try:
            d.find_element(By.CSS_SELECTOR, first).click()
        except StaleElementReferenceException:
            return False
        return True

    wait(driver, click)
    wait(driver, lambda d: "/run/" in d.current_url)


def test_a_slow_stream_shows_its_deltas_before_it_ends(browser: Any, server: LiveServer) -> None:
    open_console(browser, server, A_KEY)
    # ~9 s: time for a slow machine's browser to find the run and open it while it streams
    run = Streaming(server, {**SLOW, "echo_delay_ms": "225"})
    run.start()
    watch_first_run(browser, "live")
    text = wait(browser, lambda d: text_of(d, "[data-testid=item-message] .text"))
    ended_before = run.ended.is_set()
    terminal_before = text_of(browser, "[data-testid=terminal]")
    assert text and not ended_before and not terminal_before, "deltas only after the end"
    deltas = browser.find_elements(By.CSS_SELECTOR, ".events tr.delta")
    assert deltas, "no delta rows while streaming"
    wait(browser, lambda d: text_of(d, "[data-testid=terminal]").startswith("completed"))
    run.join(30)
    verdict = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".verdict.ok"))
    assert "passes every rule" in verdict.text
    full = text_of(browser, "[data-testid=item-message] .text")
    assert len(full.split()) == 40 and full.startswith(text.split()[0])
    # the stored response under the timeline: its request and output items
    wait(browser, lambda d: "watch me stream" in text_of(d, "[data-testid=request]"))
    path = shot(browser, "timeline")
    if os.environ.get("RESPGATE_DOCS_SCREENSHOT"):
        shutil.copy(path, ROOT / "docs" / "console.png")


def test_a_failed_stream_has_its_error_highlighted(browser: Any, server: LiveServer) -> None:
    open_console(browser, server, A_KEY)
    run = Streaming(server, {"echo_scenario": "fail", "echo_delay_ms": "30"})
    run.start()
    watch_first_run(browser)
    error = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=error]"))
    assert "server_error" in error.text
    rows = browser.find_elements(By.CSS_SELECTOR, ".events tr.error-event")
    types = [r.find_element(By.CSS_SELECTOR, "td.type").text for r in rows]
    assert types == ["error", "response.failed"]
    assert text_of(browser, "[data-testid=terminal]").startswith("failed")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".verdict.ok"))
    shot(browser, "failed")
    run.join(30)


def test_a_violation_is_highlighted_at_its_event(
    browser: Any, server: LiveServer, tmp_path: Path
) -> None:
    response_id, position = background_with_a_broken_log(server, tmp_path)
    open_console(browser, server, A_KEY, f"response/{response_id}")
    verdict = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".verdict.bad"))
    assert "[sequence_number]" in verdict.text
    flagged = browser.find_elements(By.CSS_SELECTOR, ".events tr.violation")
    assert position in [int(r.get_attribute("data-index")) for r in flagged]
    shot(browser, "violation")


def test_the_playground_sends_and_shows_the_run(browser: Any, server: LiveServer) -> None:
    open_console(browser, server, A_KEY, "playground")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=model] option"))
    field = browser.find_element(By.CSS_SELECTOR, "[data-testid=input]")
    field.clear()
    field.send_keys("sent from the playground")
    browser.find_element(By.NAME, "metadata").send_keys('{"echo_delay_ms": "10"}')
    browser.find_element(By.CSS_SELECTOR, "[data-testid=send]").click()
    wait(browser, lambda d: text_of(d, "[data-testid=terminal]").startswith("completed"))
    assert text_of(browser, "[data-testid=item-message] .text") == "Echo: sent from the playground"
    verdict = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".verdict.ok"))
    assert "passes" in verdict.text
    shot(browser, "playground")
    # not streamed: the same timeline, from the server's tap
    browser.find_element(By.NAME, "stream").click()
    browser.find_element(By.CSS_SELECTOR, "[data-testid=send]").click()
    wait(browser, lambda d: text_of(d, "[data-testid=terminal]").startswith("completed"))
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".verdict.ok"))
    assert browser.find_elements(By.CSS_SELECTOR, ".events tr.delta")


def test_the_playground_shows_reasoning_dimmed_and_tool_arguments(
    browser: Any, server: LiveServer
) -> None:
    open_console(browser, server, A_KEY, "playground")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=model] option"))
    field = browser.find_element(By.CSS_SELECTOR, "[data-testid=input]")
    field.clear()
    field.send_keys("Paris")
    tool = {"type": "function", "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}  # fmt: skip
    browser.find_element(By.NAME, "tools").send_keys(orjson.dumps([tool]).decode())
    Select(browser.find_element(By.NAME, "effort")).select_by_value("low")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=send]").click()
    wait(browser, lambda d: text_of(d, "[data-testid=terminal]").startswith("completed"))
    reasoning = browser.find_element(By.CSS_SELECTOR, "[data-testid=item-reasoning]")
    assert "Thinking about: Paris" in reasoning.text
    assert reasoning.value_of_css_property("font-style") == "italic"  # dimmed
    call = browser.find_element(By.CSS_SELECTOR, "[data-testid=item-function_call]")
    assert "get_weather" in call.text
    assert orjson.loads(call.find_element(By.CSS_SELECTOR, ".text").text) == {"city": "Paris"}
    shot(browser, "tools")


def test_stored_responses_are_listed_opened_and_deleted(browser: Any, server: LiveServer) -> None:
    created = httpx.post(f"{server.url}/v1/responses", headers=A, timeout=30,
                         json={"model": "echo", "input": "keep me"}).json()  # fmt: skip
    open_console(browser, server, A_KEY, "stored")
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"tr[data-id='{created['id']}']"))
    shot(browser, "stored")
    row.click()
    wait(browser, lambda d: "keep me" in text_of(d, "[data-testid=output]"))
    browser.execute_script("window.confirm = () => true")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=delete]").click()
    wait(browser, lambda d: "Nothing stored matches" in text_of(d, "[data-testid=stored]"))
    assert httpx.get(f"{server.url}/v1/responses", headers=A).json()["data"] == []
    # conversations: listed, opened with their items
    item = {"type": "message", "role": "user", "content": "kept in a conversation"}
    conv = httpx.post(f"{server.url}/v1/conversations", headers=A, json={"items": [item]}).json()
    Select(browser.find_element(By.NAME, "kind")).select_by_value("conversations")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"tr[data-id='{conv['id']}']")).click()
    wait(browser, lambda d: "kept in a conversation" in d.find_element(By.ID, "view").text)


def test_a_response_shows_its_chain(browser: Any, server: LiveServer) -> None:
    ids: list[str] = []
    for text in ("first", "second", "third"):
        body = {"model": "echo", "input": text, "previous_response_id": ids[-1] if ids else None}
        ids.append(httpx.post(f"{server.url}/v1/responses", headers=A, json=body).json()["id"])
    open_console(browser, server, A_KEY, f"response/{ids[-1]}")
    chain = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=chain]"))
    wait(browser, lambda d: len(chain.find_elements(By.CSS_SELECTOR, "a")) == 2)
    assert [a.text for a in chain.find_elements(By.CSS_SELECTOR, "a")] == [ids[1], ids[0]]
    chain.find_elements(By.CSS_SELECTOR, "a")[1].click()
    wait(browser, lambda d: '"first"' in text_of(d, "[data-testid=request]"))


def test_the_check_view_shows_the_rule_table(browser: Any, server: LiveServer) -> None:
    open_console(browser, server, A_KEY, "check")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    table = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=rules]"), 120)
    rules = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rules) > 10
    assert all(r.find_elements(By.CSS_SELECTOR, "td.pass") for r in rules), table.text
    shot(browser, "check")


def test_tenant_b_sees_nothing_of_tenant_a(browser: Any, server: LiveServer) -> None:
    stored = httpx.post(f"{server.url}/v1/responses", headers=A, timeout=30,
                        json={"model": "echo", "input": "a secret of a"}).json()  # fmt: skip
    conversation = httpx.post(f"{server.url}/v1/conversations", headers=A, json={}).json()
    open_console(browser, server, B_KEY)
    run = Streaming(server, SLOW)  # A streams while B watches the live list
    run.start()
    run.ended.wait(30)
    live = text_of(browser, "[data-testid=live]")
    assert "No responses in flight" in live and "team-a" not in live
    browser.get(f"{server.url}/console#/stored")
    wait(browser, lambda d: "Nothing stored matches" in text_of(d, "[data-testid=stored]"))
    browser.get(f"{server.url}/console#/stored?kind=conversations")
    wait(browser, lambda d: "Nothing stored matches" in text_of(d, "[data-testid=stored]"))
    browser.get(f"{server.url}/console#/stored?id={conversation['id']}")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=failure]"))
    browser.get(f"{server.url}/console#/response/{stored['id']}?tenant=team-a")
    wait(browser, lambda d: "Not stored" in d.find_element(By.ID, "view").text)
    assert "a secret of a" not in browser.page_source
    shot(browser, "tenant-b")
    # the control: A's console shows both
    open_console(browser, server, A_KEY, "stored")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-id='{stored['id']}']"))
