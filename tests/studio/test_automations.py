"""Event names → automations: "+" links one, "Create automation" prefills one; the editor."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, screenshot, sign_in
from tests.studio.test_segment import IDENTIFY, TRACK

WELCOME = {
    "name": "Welcome",
    "triggers": [{"source": "segment", "event": "identify"}],
    "steps": [{"action": "send", "template": "welcome", "recipient": {"$ref": "event.userId"}}],
}


def _welcome(studio: Studio) -> None:
    """WELCOME, saved after the template it names (a missing one is refused)."""
    template = {"content": {"email": {"subject": "Welcome", "text": "Hello"}}}
    assert studio.api("PUT", "/notifications/welcome", json=template).status_code == 201
    assert studio.api("PUT", "/automations/welcome", json=WELCOME).status_code == 201


def _processed(studio: Studio, message_id: str) -> bool:
    response = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return response.status_code == 200 and response.json()["status"] == "processed"


def test_plus_links_an_existing_automation_to_an_event_name(page: Page, studio: Studio) -> None:
    _welcome(studio)
    assert studio.send_segment(TRACK).status_code == 202
    sign_in(page, studio)
    page.get_by_role("link", name="Event names").click()

    row = page.locator("tr", has_text="track/Segment Test Event Name")
    expect(row.locator("td").nth(1)).to_have_text("1")
    expect(row.get_by_text("unmapped")).to_be_visible()
    # Nothing is chosen for the user: "+" without a choice links nothing.
    expect(row.get_by_label("Automation to link")).to_have_value("")
    row.get_by_role("button", name="Link the automation to track/Segment Test Event Name").click()
    assert row.get_by_label("Automation to link").evaluate("select => select.validity.valueMissing")
    assert studio.api("GET", "/automations/welcome").json()["version"] == 1
    row.get_by_label("Automation to link").select_option("welcome")
    row.get_by_role("button", name="Link the automation to track/Segment Test Event Name").click()

    row = page.locator("tr", has_text="track/Segment Test Event Name")
    expect(row.get_by_role("link", name="welcome")).to_be_visible()
    # The name leads to its events.
    row.get_by_role("link", name="track/Segment Test Event Name").click()
    expect(page).to_have_url(re.compile(r"/studio/integrations/segment\?name=track"))
    expect(page.locator("#events tbody tr")).to_have_count(1)
    page.go_back()
    saved = studio.api("GET", "/automations/welcome").json()
    assert saved["version"] == 2
    assert saved["triggers"] == [
        {"source": "segment", "event": "identify"},
        {"source": "segment", "event": "track/Segment Test Event Name"},
    ]
    screenshot(page, "event-names")


def test_create_automation_from_an_event_name(page: Page, studio: Studio) -> None:
    assert studio.send_segment(IDENTIFY).status_code == 202
    wait_for(lambda: _processed(studio, IDENTIFY["messageId"]), what="identify processed")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/event-names")
    row = page.locator("tr", has_text="identify")
    row.get_by_role("button", name="Create automation").click()

    expect(page.get_by_role("heading", name="New automation")).to_be_visible()
    expect(page.locator("#id")).to_have_value("identify")
    expect(page.locator("#triggers")).to_have_value("identify")
    # The send step opens as a form; the JSON view shows the same steps.
    expect(page.locator("#steps-0-recipient")).to_have_value('{"$ref": "event.userId"}')
    page.get_by_role("button", name="JSON", exact=True).click()
    steps = json.loads(page.locator("#steps").input_value())
    assert steps[0]["action"] == "send"
    assert steps[0]["recipient"] == {"$ref": "event.userId"}

    # A validation error is shown at its field, and nothing is saved.
    page.locator("#steps").fill('[{"action": "delay", "duration": "soon"}]')
    page.get_by_role("button", name="Save", exact=True).click()
    error = page.locator("#steps-error")
    expect(error).to_contain_text("steps[0].duration")
    expect(page.locator("#steps")).to_have_attribute("aria-invalid", "true")
    assert studio.api("GET", "/automations/identify").status_code == 404
    screenshot(page, "automation-editor-error")

    page.locator("#steps").fill(json.dumps(steps))
    page.get_by_label("Enabled").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 1.")
    created = studio.api("GET", "/automations/identify").json()
    assert created["enabled"] is True
    assert created["triggers"] == [{"source": "segment", "event": "identify"}]
    assert created["steps"][0]["recipient"] == {"$ref": "event.userId"}

    page.get_by_role("link", name="Event names").click()
    row = page.locator("tr", has_text="identify")
    # The new automation (its id is the event's name) is among the name's automations.
    expect(row.locator("td").nth(3).get_by_role("link", name="identify")).to_be_visible()


def test_enable_and_disable_from_the_list(page: Page, studio: Studio) -> None:
    _welcome(studio)
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations")
    row = page.locator("tr", has_text="welcome")
    expect(row.locator(".status")).to_have_text("enabled")
    row.get_by_role("button", name="Disable").click()
    row = page.locator("tr", has_text="welcome")
    expect(row.locator(".status")).to_have_text("disabled")
    assert studio.api("GET", "/automations/welcome").json()["enabled"] is False
    screenshot(page, "automations")
    row.get_by_role("button", name="Enable").click()
    expect(page.locator("tr", has_text="welcome").locator(".status")).to_have_text("enabled")
    assert studio.api("GET", "/automations/welcome").json()["enabled"] is True
