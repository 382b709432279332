"""Sign-in: refusal without it, password sign-in, the one-time link, sign-out."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.processes import HTTP_TIMEOUT
from tests.studio.conftest import ADMIN_EMAIL, Studio, create_admin, screenshot, sign_in
from tidings.config import Settings


def test_pages_refuse_without_sign_in(studio: Studio) -> None:
    for path in ("/studio/integrations/segment", "/studio/messages", "/studio/settings"):
        response = httpx.get(f"{studio.url}{path}", follow_redirects=False, timeout=HTTP_TIMEOUT)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/studio/sign-in?next=")
    # A live list's poll that finds no session sends the browser to sign in, and back to
    # the page the list is on afterwards, never to the list's own fragment.
    fragment = httpx.get(
        f"{studio.url}/studio/integrations/segment/events",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": f"{studio.url}/studio/integrations/segment?type=track",
        },
        follow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert fragment.status_code == 401
    assert "No Segment events" not in fragment.text
    assert fragment.headers["HX-Redirect"] == "/studio/sign-in?next=/studio/integrations/segment"
    unplaced = httpx.get(
        f"{studio.url}/studio/integrations/segment/events",
        headers={"HX-Request": "true"},
        follow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert unplaced.headers["HX-Redirect"] == "/studio/sign-in"


def test_sign_in_with_password_and_sign_out(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/studio/settings")
    expect(page).to_have_url(re.compile(r"/studio/sign-in\?next=/studio/settings$"))
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    # The command in the message is shown as code, not between literal backticks.
    expect(page.get_by_role("alert").locator("code")).to_have_text("tidings admin create EMAIL")
    expect(page.get_by_role("alert")).not_to_contain_text("`")
    screenshot(page, "sign-in")

    page.get_by_label("Password").fill("a long studio password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{studio.url}/studio/settings")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "tidings_studio")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/studio"

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{studio.url}/studio/sign-in")
    page.goto(f"{studio.url}/studio/settings")
    expect(page).to_have_url(re.compile(r"/studio/sign-in\?next="))


def test_one_time_sign_in_link_from_first_start(page: Page, studio: Studio) -> None:
    match = re.search(r"(http://\S+/studio/sign-in/link\?token=\S+)", studio.log_path.read_text())
    assert match, studio.log_path.read_text()
    link = match.group(1)
    page.goto(link)
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password (at least 10 characters)").fill("owner password 1")
    page.get_by_role("button", name="Create account and sign in").click()
    expect(page).to_have_url(f"{studio.url}/studio/integrations/segment")
    expect(page.locator(".who")).to_have_text("owner@example.com")

    # Single use: the same link is spent.
    second = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        again = second.new_page()
        response = again.goto(link)
        assert response is not None
        assert response.status == 410
        expect(again.get_by_text("already used or has expired")).to_be_visible()
    finally:
        second.close()

    # The account it created signs in with its password.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password").fill("owner password 1")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{studio.url}/studio/integrations/segment")
    sign_in(page, studio)
    expect(page.locator(".who")).to_have_text(ADMIN_EMAIL)


def test_admin_create_command_sets_a_password(
    page: Page, studio: Studio, settings: Settings
) -> None:
    created = create_admin(settings, "Second@Example.com", "first password 1")
    assert created.returncode == 0, created.stderr
    assert "Created admin second@example.com." in created.stdout
    reset = create_admin(settings, "second@example.com", "second password 2")
    assert reset.returncode == 0, reset.stderr
    assert "New password set for second@example.com." in reset.stdout
    too_short = create_admin(settings, "third@example.com", "short")
    assert too_short.returncode != 0
    assert "at least 10 characters" in too_short.stderr

    page.goto(f"{studio.url}/studio/sign-in")
    page.get_by_label("Email").fill("second@example.com")
    page.get_by_label("Password").fill("first password 1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    page.get_by_label("Password").fill("second password 2")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who")).to_have_text("second@example.com")
