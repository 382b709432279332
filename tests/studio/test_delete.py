"""Deleting templates and automations in Studio: it asks first, and names what still uses them."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, sign_in

TEMPLATE = {"content": {"email": {"subject": "Welcome", "text": "Hello"}}}
WELCOME = {
    "name": "Welcome",
    "triggers": [{"source": "segment", "event": "identify"}],
    "steps": [{"action": "send", "template": "welcome"}],
}
PARENT = {"name": "Parent", "steps": [{"action": "invoke", "template": "welcome-flow"}]}


def test_delete_a_template_that_an_automation_sends(page: Page, studio: Studio) -> None:
    assert studio.api("PUT", "/notifications/welcome", json=TEMPLATE).status_code == 201
    assert studio.api("PUT", "/notifications/unused", json=TEMPLATE).status_code == 201
    assert studio.api("PUT", "/automations/welcome-flow", json=WELCOME).status_code == 201
    sign_in(page, studio)

    page.goto(f"{studio.url}/studio/notifications/unused")
    expect(page.locator("#delete-title ~ .hint")).to_have_text("No automation sends this template.")

    page.goto(f"{studio.url}/studio/notifications/welcome")
    expect(page.locator("#delete-title ~ .hint")).to_contain_text("welcome-flow")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete this template").click()
    assert "Automations that still send it: welcome-flow" in questions[0]
    assert studio.api("GET", "/notifications/welcome").status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this template").click()
    expect(page).to_have_url(re.compile(r"/studio/notifications$"))
    assert studio.api("GET", "/notifications/welcome").status_code == 404
    expect(page.get_by_role("link", name="welcome", exact=True)).to_have_count(0)


def test_delete_an_automation_that_another_invokes(page: Page, studio: Studio) -> None:
    assert studio.api("PUT", "/notifications/welcome", json=TEMPLATE).status_code == 201
    assert studio.api("PUT", "/automations/welcome-flow", json=WELCOME).status_code == 201
    assert studio.api("PUT", "/automations/parent", json=PARENT).status_code == 201
    sign_in(page, studio)

    page.goto(f"{studio.url}/studio/automations/welcome-flow")
    expect(page.get_by_text("Invoked by:")).to_contain_text("parent")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete this automation").click()
    expect(page).to_have_url(re.compile(r"/studio/automations$"))
    assert "Automations that still invoke it: parent" in questions[0]
    assert "Its triggers stop at once" in questions[0]
    assert studio.api("GET", "/automations/welcome-flow").status_code == 404
    assert studio.api("GET", "/automations/parent").status_code == 200
