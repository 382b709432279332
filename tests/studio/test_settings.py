"""Settings: API keys revealed to the admin and revoked; the environment switcher."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import bearer
from tests.processes import HTTP_TIMEOUT
from tests.studio.conftest import Studio, sign_in
from tests.studio.test_segment import TRACK


def test_reveal_then_revoke_an_api_key(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Settings").click()
    keys = page.locator("section[aria-labelledby=keys-title] tbody tr")
    test_row = keys.filter(has_text="test").first
    # Only the hint is in the page until the admin asks for the key.
    assert studio.key not in page.content()
    test_row.get_by_role("button", name="Reveal").click()
    expect(test_row.locator("input.key")).to_have_value(studio.key)

    assert httpx.post(
        f"{studio.url}/debug", headers=bearer(studio.key), timeout=HTTP_TIMEOUT
    ).is_success
    # Revoke asks first, naming what will happen; dismissed, nothing happens.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    test_row.get_by_role("button", name="Revoke").click()
    expect(test_row.locator(".status")).to_have_text("active")
    assert "will get 401 for the test environment" in questions[0]
    assert httpx.post(
        f"{studio.url}/debug", headers=bearer(studio.key), timeout=HTTP_TIMEOUT
    ).is_success
    page.once("dialog", lambda dialog: dialog.accept())
    test_row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("Key revoked.")
    expect(keys.filter(has_text="test").first.locator(".status")).to_have_text("revoked")
    refused = httpx.post(f"{studio.url}/debug", headers=bearer(studio.key), timeout=HTTP_TIMEOUT)
    assert refused.status_code == 401


def test_environment_switcher_changes_what_every_page_shows(page: Page, studio: Studio) -> None:
    assert studio.send_segment(TRACK).status_code == 202
    sign_in(page, studio)
    expect(page.locator("#events tbody tr")).to_have_count(1)

    page.get_by_label("Environment").select_option("production")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_label("Environment")).to_have_value("production")
    expect(page.get_by_text("No Segment events received yet.")).to_be_visible()
    page.get_by_role("navigation").get_by_role("link", name="Event names").click()
    expect(page.get_by_label("Environment")).to_have_value("production")
    expect(page.locator("main")).to_contain_text("No Segment events received yet.")

    page.get_by_label("Environment").select_option("test")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("tr", has_text="track/Segment Test Event Name")).to_be_visible()


def test_create_an_ingest_key_and_see_its_scope(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/settings")
    keys = page.locator("section[aria-labelledby=keys-title] tbody tr")
    expect(keys).to_have_count(2)
    expect(keys.locator(".key-scope")).to_have_text(["secret", "secret"])

    page.get_by_label("New key for").select_option("production")
    page.get_by_label("with scope").select_option("ingest")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("status")).to_have_text("Key created.")
    expect(keys).to_have_count(3)
    new_row = keys.filter(has=page.locator(".key-scope", has_text="ingest"))
    expect(new_row).to_have_count(1)
    expect(new_row.locator("td").first).to_have_text("production")
    new_row.get_by_role("button", name="Reveal").click()
    ingest_key = new_row.locator("input.key").input_value()
    assert ingest_key.startswith("tdg_live_")

    assert httpx.post(
        f"{studio.url}/debug", headers=bearer(ingest_key), timeout=HTTP_TIMEOUT
    ).is_success
    refused = httpx.get(
        f"{studio.url}/profiles/u1", headers=bearer(ingest_key), timeout=HTTP_TIMEOUT
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
