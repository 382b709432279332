"""The automation editor's step forms: a card a step with a form for its type, pickers for
templates and lists, add, remove and reorder, a JSON view of the same steps, and errors at
the field they name."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.studio.conftest import Studio, screenshot, sign_in

EMAIL = {"content": {"email": {"subject": "Hello", "text": "Hello {{ profile.name }}"}}}


def _templates(studio: Studio, *names: str) -> None:
    for name in names:
        assert studio.api("PUT", f"/notifications/{name}", json=EMAIL).status_code == 201


def _add_step(page: Page, action: str) -> None:
    count = page.locator(".step-card").count()
    page.get_by_label("Add a step").select_option(action)
    page.get_by_role("button", name="Add step").click()
    expect(page.locator(".step-card")).to_have_count(count + 1)


def _headings(page: Page) -> list[str]:
    return [text.strip() for text in page.locator(".step-card h3").all_inner_texts()]


def test_build_an_automation_through_the_forms(page: Page, studio: Studio) -> None:
    _templates(studio, "welcome", "reminder")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/new")
    page.locator("#id").fill("onboarding")
    page.locator("#name").fill("Onboarding")
    page.locator("#triggers").fill("identify")
    expect(page.locator(".step-card")).to_have_count(0)

    _add_step(page, "send")
    # htmx swapped the editor: the page is still the new automation's.
    expect(page).to_have_url(re.compile(r"/studio/automations/new$"))
    template = page.locator("#steps-0-template")
    # The new card's first field has the focus.
    expect(template).to_be_focused()
    expect(template.locator("option")).to_have_text(["none", "reminder", "welcome"])
    template.select_option("welcome")
    page.locator("#steps-0-recipient").fill('{"$ref": "event.userId"}')
    page.locator("#steps-0-data").fill('{"plan": "pro"}')
    _add_step(page, "delay")
    # What was typed in the first card is kept when another is added.
    expect(page.locator("#steps-0-template")).to_have_value("welcome")
    page.locator("#steps-1-duration").fill("1 day")
    # The seldom used fields are under "More fields".
    expect(page.locator("#steps-1-ref")).to_be_hidden()
    page.locator("#step-1").get_by_text("More fields").click()
    page.locator("#steps-1-ref").fill("welcome_wait")
    # Enter in a field saves (it does not press a step's Remove).
    page.locator("#steps-1-ref").press("Enter")
    expect(page.get_by_role("status")).to_have_text("Saved as version 1.")

    saved = studio.api("GET", "/automations/onboarding").json()
    assert saved["name"] == "Onboarding"
    assert saved["enabled"] is False
    assert saved["triggers"] == [{"source": "segment", "event": "identify"}]
    assert saved["cancelation_token"] is None
    assert saved["steps"] == [
        {
            "action": "send",
            "template": "welcome",
            "recipient": {"$ref": "event.userId"},
            "data": {"plan": "pro"},
        },
        {"action": "delay", "duration": "1 day", "ref": "welcome_wait"},
    ]
    # The saved automation opens in the form view, each field in its widget.
    expect(page.locator("#steps-0-template")).to_have_value("welcome")
    expect(page.locator("#steps-0-recipient")).to_have_value('{"$ref": "event.userId"}')
    expect(page.locator("#steps-1-duration")).to_have_value("1 day")
    # "More fields" is open where one of them is set.
    expect(page.locator("#steps-1-ref")).to_be_visible()
    expect(page.locator("#steps-0-ref")).to_be_hidden()
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.locator("#steps-title").evaluate("title => { title.scrollIntoView(); scrollBy(0, -24); }")
    screenshot(page, "automation-steps")


def test_json_and_form_views_edit_the_same_steps(page: Page, studio: Studio) -> None:
    _templates(studio, "welcome")
    automation = {
        "name": "Welcome",
        "triggers": [{"source": "segment", "event": "identify"}],
        "steps": [{"action": "send", "template": "welcome"}],
    }
    assert studio.api("PUT", "/automations/welcome", json=automation).status_code == 201
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/welcome")
    _add_step(page, "delay")
    page.locator("#steps-1-duration").fill("3 days")

    # The unsaved form, as JSON.
    page.get_by_role("button", name="JSON", exact=True).click()
    expect(page.get_by_role("button", name="JSON", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    steps = json.loads(page.locator("#steps").input_value())
    assert steps == [
        {"action": "send", "template": "welcome"},
        {"action": "delay", "duration": "3 days"},
    ]
    steps[1]["duration"] = "5 days"
    steps.append({"action": "update-profile", "profile": {"onboarded": True}, "merge": "overwrite"})
    page.locator("#steps").fill(json.dumps(steps))

    # And back: the edit is in the form.
    page.get_by_role("button", name="Form", exact=True).click()
    expect(page.locator("#steps-1-duration")).to_have_value("5 days")
    expect(page.locator("#steps-2-profile")).to_have_value('{\n  "onboarded": true\n}')
    expect(page.locator("#steps-2-merge")).to_have_value("overwrite")

    # JSON that does not parse stays in the JSON view, its error at the field.
    page.get_by_role("button", name="JSON", exact=True).click()
    page.locator("#steps").fill('[{"action": "delay"')
    page.get_by_role("button", name="Form", exact=True).click()
    expect(page.locator("#steps-error")).to_contain_text("steps: not valid JSON")
    expect(page.locator("#steps")).to_have_value('[{"action": "delay"')

    # Save takes the JSON view as it is.
    page.locator("#steps").fill(json.dumps(steps))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 2.")
    assert studio.api("GET", "/automations/welcome").json()["steps"] == steps


def test_add_remove_and_reorder_steps(page: Page, studio: Studio) -> None:
    _templates(studio, "welcome")
    assert studio.api("PUT", "/lists/customers", json={"name": "Customers"}).status_code == 204
    automation = {
        "name": "Three steps",
        "enabled": False,
        "steps": [
            {"action": "delay", "duration": "1 hour"},
            {"action": "send", "template": "welcome"},
            {"action": "cancel", "cancelation_token": "{{ data.order_id }}"},
        ],
    }
    assert studio.api("PUT", "/automations/three", json=automation).status_code == 201
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/three")
    expect(page.locator(".step-card h3")).to_have_text(["1. delay", "2. send", "3. cancel"])

    page.get_by_role("button", name="Move step 2 up").click()
    expect(page.locator(".step-card h3")).to_have_text(["1. send", "2. delay", "3. cancel"])
    expect(page.locator("#step-0")).to_be_focused()
    page.get_by_role("button", name="Move step 2 down").click()
    expect(page.locator(".step-card h3")).to_have_text(["1. send", "2. cancel", "3. delay"])
    page.get_by_role("button", name="Remove step 2").click()
    expect(page.locator(".step-card h3")).to_have_text(["1. send", "2. delay"])
    # The first card has no "up", the last no "down".
    expect(page.get_by_role("button", name="Move step 1 up")).to_have_count(0)
    expect(page.get_by_role("button", name="Move step 2 down")).to_have_count(0)

    # A send-list step picks its list and template from the environment's.
    _add_step(page, "send-list")
    expect(page.locator("#steps-2-list option")).to_have_text(["choose…", "customers"])
    page.locator("#steps-2-list").select_option("customers")
    page.locator("#steps-2-template").select_option("welcome")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 2.")
    assert studio.api("GET", "/automations/three").json()["steps"] == [
        {"action": "send", "template": "welcome"},
        {"action": "delay", "duration": "1 hour"},
        {"action": "send-list", "list": "customers", "template": "welcome"},
    ]


def test_errors_are_shown_at_the_field_they_name(page: Page, studio: Studio) -> None:
    _templates(studio, "welcome")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/new")
    page.locator("#id").fill("errors")
    _add_step(page, "delay")
    _add_step(page, "fetch-data")
    page.locator("#steps-0-duration").fill("soon")
    page.locator("#steps-1-webhook-url").fill("https://example.org/{{ data.id }}")
    page.locator("#steps-1-webhook-headers").fill('{"X-Token": ')
    page.get_by_role("button", name="Save", exact=True).click()

    # JSON that does not parse, at its field; what was typed is still there.
    expect(page.locator("#steps-1-webhook-headers-error")).to_contain_text(
        "steps[1].webhook.headers: not valid JSON"
    )
    expect(page.locator("#steps-1-webhook-headers")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#steps-0-duration")).to_have_value("soon")

    # The API's validation, at the field its path names.
    page.locator("#steps-1-webhook-headers").fill('{"X-Token": "t"}')
    page.get_by_role("button", name="Save", exact=True).click()
    error = page.locator("#steps-0-duration-error")
    expect(error).to_contain_text("steps[0].duration")
    expect(page.locator("#steps-0-duration")).to_have_attribute("aria-invalid", "true")
    assert studio.api("GET", "/automations/errors").status_code == 404

    page.locator("#steps-0-duration").fill("10 minutes")
    page.locator("#steps-1-webhook-method").select_option("POST")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 1.")
    saved: dict[str, Any] = studio.api("GET", "/automations/errors").json()
    assert saved["steps"] == [
        {"action": "delay", "duration": "10 minutes"},
        {
            "action": "fetch-data",
            "webhook": {
                "url": "https://example.org/{{ data.id }}",
                "method": "POST",
                "headers": {"X-Token": "t"},
            },
            "merge_strategy": "soft-merge",
        },
    ]

    # In the JSON view, the same error is at the steps, with its path.
    page.get_by_role("button", name="JSON", exact=True).click()
    page.locator("#steps").fill('[{"action": "send", "template": "nothing"}]')
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#steps-error")).to_contain_text("steps[0].template")
    expect(page.locator("#steps")).to_have_attribute("aria-invalid", "true")
    # And in the form view at the template picker, which shows the id it did not find.
    page.get_by_role("button", name="Form", exact=True).click()
    expect(page.locator("#steps-0-template")).to_have_value("nothing")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#steps-0-template-error")).to_contain_text(
        "there is no notification template"
    )


def test_the_step_buttons_work_without_javascript(browser: Browser, studio: Studio) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, studio)
        page.goto(f"{studio.url}/studio/automations/new")
        page.locator("#id").fill("plain")
        page.get_by_label("Add a step").select_option("delay")
        page.get_by_role("button", name="Add step").click()
        # The whole page came back from the editor's address, with what was typed.
        expect(page).to_have_url(re.compile(r"/studio/automations/editor$"))
        expect(page.locator("#id")).to_have_value("plain")
        page.locator("#steps-0-duration").fill("5 minutes")
        page.get_by_role("button", name="JSON", exact=True).click()
        assert json.loads(page.locator("#steps").input_value()) == [
            {"action": "delay", "duration": "5 minutes"}
        ]
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("Saved as version 1.")
    finally:
        context.close()
    assert studio.api("GET", "/automations/plain").json()["steps"] == [
        {"action": "delay", "duration": "5 minutes"}
    ]
