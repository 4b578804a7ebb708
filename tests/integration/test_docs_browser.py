"""/docs in a real headless Chromium, offline: Try it out on /bot-score returns a p_bot."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.support.servers import ROOT, Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [  # and --headless, which headless=True adds
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def service(tmp_path: Path) -> Service:
    running = Service(tmp_path).start()
    yield running
    running.stop(signal.SIGTERM)


def test_swagger_ui_scores_a_transaction_without_internet(service: Service, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "chromium not installed (make test installs Debian's chromium)"
    elsewhere: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 1400},
        )
        try:
            page = browser.new_page()

            def only_loopback(route, request):
                if urlsplit(request.url).hostname == "127.0.0.1" or request.url.startswith("data:"):
                    route.continue_()
                else:
                    elsewhere.append(request.url)
                    route.abort()

            page.route("**/*", only_loopback)
            page.goto(service.url + "/docs")
            page.locator("#operations-scoring-score").click()
            operation = page.locator(".opblock.is-open").first
            operation.get_by_role("button", name="Try it out").click()
            operation.get_by_role("button", name="Execute").click()
            body = operation.locator(".responses-wrapper .live-responses-table .response-col_description pre").first
            body.wait_for(timeout=15_000)
            answer = json.loads(body.inner_text())
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "docs-try-it-out.png"), full_page=True)
        finally:
            browser.close()
    assert 0.0 <= answer["p_bot"] <= 1.0
    assert elsewhere == []  # every asset came from the app itself
