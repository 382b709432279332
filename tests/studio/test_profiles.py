"""Profiles: search by user id or email, and a profile's traits, tenants and events."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, screenshot, sign_in

IDENTIFY = {
    "messageId": "identify-ada",
    "type": "identify",
    "traits": {"email": "ada@example.org", "plan": "pro"},
    "userId": "user-ada",
}
GROUP = {
    "messageId": "group-ada",
    "type": "group",
    "groupId": "acme",
    "traits": {"name": "Acme"},
    "userId": "user-ada",
}
OTHER = {
    "messageId": "identify-other",
    "type": "identify",
    "traits": {"email": "someone@example.net"},
    "userId": "user-other",
}


def _processed(studio: Studio, message_id: str) -> bool:
    response = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return response.status_code == 200 and response.json()["status"] == "processed"


def test_search_by_email_and_user_id_then_detail(page: Page, studio: Studio) -> None:
    for body in (IDENTIFY, GROUP, OTHER):
        assert studio.send_segment(body).status_code == 202
    for body in (IDENTIFY, GROUP, OTHER):
        wait_for(lambda body=body: _processed(studio, body["messageId"]), what="processed")
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Profiles").click()
    expect(page.locator("#profiles tbody tr")).to_have_count(2)

    page.get_by_label("User id or email").fill("ada@example")
    rows = page.locator("#profiles tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("user-ada")
    page.get_by_label("User id or email").fill("user-oth")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("someone@example.net")
    page.get_by_label("User id or email").fill("nobody")
    expect(page.locator("#profiles")).to_contain_text("No profile matches")

    page.get_by_label("User id or email").fill("ada")
    page.get_by_role("link", name="user-ada").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("user-ada")
    expect(page.locator("#traits")).to_contain_text('"plan": "pro"')
    events = page.locator("#profile-list")
    expect(events.get_by_role("link", name="identify")).to_be_visible()
    expect(events.get_by_role("link", name="group")).to_be_visible()
    screenshot(page, "profile")
    tabs = page.get_by_role("navigation", name="Lists of this profile")
    tabs.get_by_role("link", name="Tenants").click()
    expect(page.locator("#profile-list li")).to_have_text(["acme"])
