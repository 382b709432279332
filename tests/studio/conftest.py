"""Studio tests: a real `tidings serve`, driven by Debian's chromium through Playwright."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.conftest import Keys, LiveServer, Serve, bearer, run_cli
from tests.processes import HTTP_TIMEOUT, WAIT_SECONDS, scaled
from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.studio.auth import set_admin_password

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a long studio password"
# The machine running the suite may be busy: Playwright waits as long as wait_for does
# (tests/processes.py), not its 5 s. A passing assertion returns as soon as it holds.
TIMEOUT_MS = scaled(WAIT_SECONDS) * 1000
expect.set_options(timeout=TIMEOUT_MS)

SEGMENT_HEADERS = {"User-Agent": "SegmentCourier", "Content-Type": "application/json"}


@dataclass
class Studio:
    server: LiveServer
    key: str
    log_path: Path

    @property
    def url(self) -> str:
        return self.server.url

    def send_segment(self, body: dict[str, Any]) -> httpx.Response:
        """POST one event the way Segment's Courier destination sends it."""
        return httpx.post(
            f"{self.url}/inbound/segment",
            json=body,
            headers={**SEGMENT_HEADERS, **bearer(self.key)},
            timeout=HTTP_TIMEOUT,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers=bearer(self.key), timeout=HTTP_TIMEOUT, **kwargs
        )


def create_admin(settings: Settings, email: str, password: str) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, "admin", "create", email, input=f"{password}\n{password}\n")


@pytest.fixture
def studio(serve: Serve, runtime: Runtime, keys: Keys) -> Studio:
    """`tidings serve` on a fresh data dir; one admin is created once it has started."""
    server = serve()
    with runtime.database.write() as (session, _):
        set_admin_password(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    return Studio(server, keys.test, server.log_path)


# Package-scoped, not session-scoped: while Playwright's sync API runs, its event loop is
# the main thread's running loop, and a test elsewhere that calls asyncio.run() in the same
# pytest worker (tests/ingest/test_writer.py) would fail. It ends with the Studio tests.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/studio/sign-in")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{studio.url}/studio/integrations/segment")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
