"""What a save refuses and a send could not render, as Studio shows them: a missing template
at the automation editor's steps field, and a message's Liquid error on its page."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import Studio, sign_in

INVOICE = {
    "strict": True,
    "content": {
        "email": {
            "subject": "Your invoice",
            "text": "Hello {{ profile.name }},\nyou owe {{ data.total | divided_by: data.parts }}.",
        }
    },
}


def _message(studio: Studio, request_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = studio.api("GET", f"/messages/{request_id}").json()
    return body if body["status"] not in ("ENQUEUED", "ROUTED") else None


def test_the_message_page_shows_the_render_error_with_its_line(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    assert studio.api("PUT", "/notifications/invoice", json=INVOICE).status_code == 201
    provider = {"config": smtp_sink.provider_config()}
    assert studio.api("PUT", "/providers/smtp", json=provider).status_code == 201
    profile = {"profile": {"email": "ada@example.org", "name": "Ada"}}
    assert studio.api("POST", "/profiles/u1", json=profile).status_code == 200
    sent = studio.api(
        "POST",
        "/send",
        json={
            "message": {
                "to": {"user_id": "u1"},
                "template": "invoice",
                "data": {"total": 10, "parts": 0},
            }
        },
    )
    assert sent.status_code == 202, sent.text
    message = wait_for(lambda: _message(studio, sent.json()["requestId"]), what="the message")
    assert (message["status"], message["tidings_reason"]) == ("UNDELIVERABLE", "RENDER_FAILED")

    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/messages/{message['id']}")
    failures = page.get_by_role("alert").filter(has_text="Did not render")
    expect(failures).to_contain_text("email.text (line 2)")
    expect(failures).to_contain_text("divided_by: can't divide by 0 (line 2, column 25)")
    expect(page.get_by_text("Not rendered yet.")).to_have_count(0)
    expect(page.locator("main")).to_contain_text(
        "RENDER_FAILED: email.text: divided_by: can't divide by 0"
    )
    assert smtp_sink.messages == []


def test_the_editor_refuses_a_missing_template_at_the_steps_field(
    page: Page, studio: Studio
) -> None:
    sign_in(page, studio)
    # The JSON view of the steps, opened directly.
    page.goto(f"{studio.url}/studio/automations/new?view=json")
    page.locator("#id").fill("welcome")
    steps = [{"action": "delay", "duration": "1 minute"}, {"action": "send", "template": "hi"}]
    page.locator("#steps").fill(json.dumps(steps))
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#steps-error")).to_contain_text(
        'steps[1].template: there is no notification template "hi"'
    )
    expect(page.locator("#steps")).to_have_attribute("aria-invalid", "true")
    assert studio.api("GET", "/automations/welcome").status_code == 404

    template = {"content": {"sms": {"text": "Hi {{ data.name | upcase }}"}}}
    assert studio.api("PUT", "/notifications/hi", json=template).status_code == 201
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved as version 1.")
    assert studio.api("GET", "/automations/welcome").json()["steps"][1]["template"] == "hi"
