"""Issue 16 (run page): /ui/ in a real browser (Debian's chromium and chromium-driver, driven by
selenium): asked for the token once, a posted event's run appears, its task's log follows while
the task runs, replay starts a new run. And the rule for when the page is served."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from executor.settings.serving import ReceiverSettings
from executor.sources.http import HttpSource
from executor.ui import RunPage, is_loopback
from tests.observe.servers import serving

TOKEN = "ui-token-123"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[object]:
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver on PATH (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"):
        options.add_argument(flag)
    # The driver found on PATH: selenium's own manager would try to download one.
    driver = webdriver.Chrome(service=DriverService(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_run_page_shows_a_posted_event_its_log_and_replays_it(tmp_path: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    wait = WebDriverWait(browser, 20)
    with serving(tmp_path, {"RCV_AUTH_TOKEN": TOKEN, "SLEEP": "4"}) as serve:
        browser.get(f"{serve.base}/ui/")
        # The API answered 401: the page asks for the token, once, and keeps it for the tab.
        field = wait.until(ec.visibility_of_element_located((By.ID, "token")))
        field.send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "empty")))
        assert browser.execute_script("return sessionStorage.getItem('job-executor.token')") == TOKEN

        serve.post_event("ui-1")
        # Auto-refresh brings the run in, running, without a reload.
        link = wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "ui-1")))
        link.click()
        wait.until(ec.visibility_of_element_located((By.ID, "run-view")))
        log = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "[data-task='Test/Greet'] pre.log.following"))
        )
        # The line arrives while the task still runs (it sleeps 4 s after it).
        wait.until(lambda _: "hello from the run page" in log.text)
        assert "following" in (log.get_attribute("class") or "")
        wait.until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-task='Test/Greet'] h2"), "succeeded")
        )
        wait.until(ec.text_to_be_present_in_element((By.ID, "run-status"), "succeeded"))
        bars = browser.find_elements(By.CSS_SELECTOR, "[data-task='Test/Greet'] .timeline .bar")
        assert [b.get_attribute("class") for b in bars] == [
            "bar queued",
            "bar staging",
            "bar starting",
            "bar running",
        ]
        shot = tmp_path / "ui.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")
        if os.environ.get("UI_SCREENSHOT"):  # docs/ui.png: UI_SCREENSHOT=docs/ui.png pytest -k run_page
            shutil.copy(shot, os.environ["UI_SCREENSHOT"])

        browser.find_element(By.ID, "replay").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "run-facts"), "ui-1.replay-"))
        browser.get(f"{serve.base}/ui/#/")
        wait.until(ec.presence_of_element_located((By.PARTIAL_LINK_TEXT, "ui-1.replay-")))


@pytest.mark.parametrize(
    ("mode", "host", "token", "served"),
    [
        ("auto", "127.0.0.1", "", True),
        ("auto", "::1", "", True),
        ("auto", "localhost", "", True),
        ("auto", "0.0.0.0", "", False),
        ("auto", "job-executor.example", "", False),
        ("auto", "0.0.0.0", "t", True),
        ("on", "0.0.0.0", "", True),
        ("off", "127.0.0.1", "t", False),
    ],
)
def test_the_page_is_served_on_loopback_or_behind_a_token(
    mode: str, host: str, token: str, served: bool
) -> None:
    assert RunPage(mode, host, token).served is served
    assert is_loopback(host) is (host in ("127.0.0.1", "::1", "localhost"))


async def test_an_unserved_page_says_what_to_set_and_a_served_one_only_its_files() -> None:
    source = HttpSource(_Intake(), _metrics(), ReceiverSettings(host="0.0.0.0"), not_ready=lambda: None)
    source.ui = RunPage("auto", "0.0.0.0", "")
    async with TestClient(TestServer(source.app())) as client:
        response = await client.get("/ui/")
        assert response.status == 404
        assert "RCV_AUTH_TOKEN" in await response.text() and "UI=on" in await response.text()
    source.ui = RunPage("on", "0.0.0.0", "")
    async with TestClient(TestServer(source.app())) as client:
        response = await client.get("/ui/")
        assert response.status == 200 and "app.js" in await response.text()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        script = await client.get("/ui/app.js")
        assert script.status == 200 and script.content_type == "text/javascript"
        assert (await client.get("/ui/..%2Fsettings.py")).status == 404
        assert (await client.get("/ui/__init__.py")).status == 404
        moved = await client.get("/ui", allow_redirects=False)
        assert moved.status == 308 and moved.headers["Location"] == "/ui/"


class _Intake:
    accepting = True
    queue_size = 1

    def room(self) -> int:
        return 1

    def offer(self, event: object) -> object:
        raise AssertionError("no event is posted here")

    async def offer_all(self, events: object) -> object:
        raise AssertionError("no event is posted here")


def _metrics() -> object:
    from executor.support.metrics import Metrics

    return Metrics()
