"""Open and click tracking in Studio: a template's setting in its editor, and the
environment's default on the Settings page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, sign_in

TEMPLATE = {"content": {"email": {"subject": "Hi", "html": '<a href="https://example.com/">x</a>'}}}


def test_a_templates_tracking_and_the_environments_default(page: Page, studio: Studio) -> None:
    assert studio.api("PUT", "/notifications/hello", json=TEMPLATE).status_code == 201
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/hello")
    opens = page.get_by_label("Opens: an open pixel")
    clicks = page.get_by_label("Clicks: links through a tracked redirect")
    expect(opens).to_have_value("")
    expect(opens.locator("option:checked")).to_have_text("Environment default (off)")

    opens.select_option("on")
    clicks.select_option("off")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    saved = studio.api("GET", "/notifications/hello").json()
    assert saved["tracking"] == {"opens": True, "clicks": False}
    expect(opens).to_have_value("on")

    clicks.select_option("")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    assert studio.api("GET", "/notifications/hello").json()["tracking"] == {"opens": True}

    # The environment's default, on Settings.
    page.goto(f"{studio.url}/studio/settings")
    section = page.locator("section#tracking")
    expect(section.get_by_label("Track opens: an open pixel in HTML email")).not_to_be_checked()
    section.get_by_label("Track clicks: HTML email links through a tracked redirect").check()
    section.get_by_role("button", name="Save tracking defaults").click()
    expect(page.get_by_role("status")).to_have_text("Tracking defaults saved.")
    assert studio.api("GET", "/settings/tracking").json() == {"opens": False, "clicks": True}
    expect(
        page.locator("section#tracking").get_by_label(
            "Track clicks: HTML email links through a tracked redirect"
        )
    ).to_be_checked()
    # The editor names the default it leaves a setting to.
    page.goto(f"{studio.url}/studio/notifications/hello")
    expect(clicks.locator("option:checked")).to_have_text("Environment default (on)")
