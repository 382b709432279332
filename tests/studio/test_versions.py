"""History pages: the versions of a template or an automation, a diff of two, and restore."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import Keys
from tests.studio.conftest import ADMIN_EMAIL, Studio, screenshot, sign_in

WELCOME = {"content": {"email": {"subject": "Welcome", "text": "Hello"}}}


def _save_in_studio(page: Page, field: str, value: str) -> None:
    page.locator(field).fill(value)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved")


def test_template_history_shows_the_change_and_restores_a_version(
    page: Page, studio: Studio, keys: Keys
) -> None:
    assert studio.api("PUT", "/notifications/welcome", json=WELCOME).status_code == 201
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/welcome")
    _save_in_studio(page, "#email-subject", "Welcome, {{ profile.name }}")
    _save_in_studio(page, "#email-text", "Hello <b>there</b>")

    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("History of template welcome")
    rows = page.get_by_role("table", name="Versions").locator("tbody tr")
    expect(rows).to_have_count(3)
    # Newest first: who saved each, the current one marked.
    expect(rows.nth(0)).to_contain_text("current")
    expect(rows.nth(0)).to_contain_text(ADMIN_EMAIL)
    expect(rows.nth(2)).to_contain_text(keys.test_id)
    expect(rows.nth(0).get_by_role("button", name="Restore version 3")).to_have_count(0)

    # By default the newest version against the one before it; markup in content is text.
    expect(page.get_by_role("heading", name="Version 2 → version 3")).to_be_visible()
    diff = page.locator("pre.diff")
    expect(diff.locator(".diff-removed")).to_contain_text(['"text": "Hello"'])
    expect(diff.locator(".diff-added")).to_contain_text(['"text": "Hello <b>there</b>"'])
    expect(diff.locator("b")).to_have_count(0)
    page.get_by_role("link", name="Changes in version 2").click()
    expect(page.get_by_role("heading", name="Version 1 → version 2")).to_be_visible()
    expect(diff.locator(".diff-removed")).to_contain_text(['"subject": "Welcome"'])
    expect(diff.locator(".diff-added")).to_contain_text(
        ['"subject": "Welcome, {{ profile.name }}"']
    )
    screenshot(page, "version-history")

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status")).to_have_text(
        "Saved version 4 with the content of version 1."
    )
    assert questions[0].startswith("Saves version 4 with the content of version 1.")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("restored from version 1")
    # The new version against the one before it: version 3's changes undone.
    expect(page.get_by_role("heading", name="Version 3 → version 4")).to_be_visible()
    expect(diff.locator(".diff-added")).to_contain_text(['"subject": "Welcome"', '"text": "Hello"'])

    template = studio.api("GET", "/notifications/welcome").json()
    versions = studio.api("GET", "/notifications/welcome/versions").json()["results"]
    assert template["content"] == versions[0]["content"]
    assert template["content"]["email"]["subject"] == "Welcome"
    assert [(v["version"], v["restored_from"]) for v in versions][-1] == (4, 1)
    assert versions[-1]["saved_by"] == ADMIN_EMAIL
    assert versions[2]["content"]["email"]["text"] == "Hello <b>there</b>"
    page.get_by_role("link", name="← welcome").click()
    expect(page.locator("#email-subject")).to_have_value("Welcome")
    expect(page.locator("#email-text")).to_have_value("Hello")


def _onboarding(template: str) -> dict[str, object]:
    return {
        "name": "Onboarding",
        "triggers": [{"source": "segment", "event": "identify"}],
        "steps": [{"action": "send", "template": template}],
    }


def test_automation_restore_is_checked_as_a_save_and_saves_a_new_version(
    page: Page, studio: Studio
) -> None:
    for template in ("welcome", "welcome-v2"):
        assert studio.api("PUT", f"/notifications/{template}", json=WELCOME).status_code == 201
    assert studio.api("PUT", "/automations/onboarding", json=_onboarding("welcome")).is_success
    assert studio.api("PUT", "/automations/onboarding", json=_onboarding("welcome-v2")).is_success
    assert studio.api("DELETE", "/notifications/welcome").status_code == 204
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/onboarding")
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("History of automation onboarding")
    diff = page.locator("pre.diff")
    expect(diff.locator(".diff-added")).to_contain_text(['"template": "welcome-v2"'])

    # Version 1 sends a template deleted since: refused, as a save would be.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("alert")).to_contain_text("there is no notification template")
    assert studio.api("GET", "/automations/onboarding").json()["version"] == 2

    assert studio.api("PUT", "/notifications/welcome", json=WELCOME).status_code == 201
    page.goto(f"{studio.url}/studio/automations/onboarding/versions")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status")).to_have_text(
        "Saved version 3 with the content of version 1."
    )
    automation = studio.api("GET", "/automations/onboarding").json()
    assert (automation["version"], automation["steps"][0]["template"]) == (3, "welcome")
    versions = studio.api("GET", "/automations/onboarding/versions").json()["results"]
    assert (versions[-1]["restored_from"], versions[-1]["saved_by"]) == (1, ADMIN_EMAIL)

    # Version 3 is version 1 again: restoring 1 once more saves nothing.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_role("status")).to_have_text(
        "Nothing to save: the automation already has the content of version 1 (version 3)."
    )
    assert studio.api("GET", "/automations/onboarding").json()["version"] == 3

    # A version number that is not one is reported at its field.
    page.goto(f"{studio.url}/studio/automations/onboarding/versions?a=99")
    expect(page.locator("#a-error")).to_contain_text("give a number from 1 to 3")
