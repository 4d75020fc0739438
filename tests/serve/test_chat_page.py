"""The chat page in real headless Chromium: a reply streams in; a flagged one shows the guard stepped in."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from support import ScriptedSession

from alignlab.guard.streaming import REFUSAL, StreamingGuard
from alignlab.models.scripted import ScriptedBackend
from alignlab.serve.app import create_app

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian chromium and chromium-driver (make test installs them)",
)


class Tripwire(ScriptedSession):
    def prompt(self, hidden: Any) -> Any:
        from alignlab.guard.cascade import Verdict

        return Verdict(True, "input") if any("forbidden" in m["content"] for m in self.messages) else None


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    yield driver
    driver.quit()


def ask(browser: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "prompt").send_keys(text)
    browser.find_element(By.ID, "send").click()
    replies = lambda d: d.find_elements(By.CSS_SELECTOR, ".assistant")  # noqa: E731
    WebDriverWait(browser, 30).until(
        lambda d: replies(d) and replies(d)[-1].get_attribute("data-state") != "streaming"
    )
    return replies(browser)[-1]


def test_the_chat_page_streams_and_shows_the_guard(browser: Any, live_server: Any) -> None:
    guard = StreamingGuard(Tripwire, False, lambda m: {}, hold_back=1)
    with live_server(create_app(ScriptedBackend("Hello from the assistant."), guard=guard)) as server:
        browser.get(server.url + "/")
        answer = ask(browser, "hi there")
        assert answer.get_attribute("data-state") == "stop"
        assert answer.text == "Assistant: Hello from the assistant."
        refused = ask(browser, "something forbidden")
        assert refused.get_attribute("data-state") == "content_filter"
        assert REFUSAL in refused.text and "guard stepped in" in refused.text


def test_the_page_draws_the_guard_trace_of_the_real_cascade(
    browser: Any, live_server: Any, tiny_backend: Any, tiny_guard: Any, tmp_path: Any
) -> None:
    from release_audit import ESCALATED, edited_guard
    from selenium.webdriver.common.by import By

    from alignlab.guard.load import serving_guard

    guard = serving_guard(str(edited_guard(tiny_guard, tmp_path, **ESCALATED)), tiny_backend, hold_back=1)
    with live_server(create_app(tiny_backend, guard=guard)) as server:
        browser.set_window_size(900, 700)
        browser.get(server.url + "/")
        answer = ask(browser, "what is the capital of france")
        assert answer.get_attribute("data-state") in ("stop", "length")
        trace = browser.find_elements(By.CSS_SELECTOR, ".trace")[-1]
        assert trace.get_attribute("data-flagged") == "false"
        assert trace.get_attribute("data-escalated-at") == "0", (
            "the thresholds force escalation at the prompt"
        )
        assert int(trace.get_attribute("data-steps") or 0) > 2
        lines = {p.get_attribute("class") for p in trace.find_elements(By.CSS_SELECTOR, "polyline")}
        assert lines == {"series probe", "series ensemble"}
        assert trace.find_elements(By.CSS_SELECTOR, "line.escalation")
        assert "escalated at step 0" in trace.text and "unread 0" in trace.text
        shot = tmp_path / "chat-trace.png"
        browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 5000
