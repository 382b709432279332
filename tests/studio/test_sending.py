"""Providers configured in Studio, a template with live preview, a test send, the message log."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import Studio, screenshot, sign_in

ROD = {
    "messageId": "identify-rod",
    "type": "identify",
    "traits": {"email": "rod@example.org", "name": "Rod"},
    "userId": "rod-test",
}


def _processed(studio: Studio, message_id: str) -> bool:
    response = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return response.status_code == 200 and response.json()["status"] == "processed"


def test_provider_secrets_are_write_only(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/settings")
    page.get_by_role("link", name="Twilio").click()
    page.locator("#config-account_sid").fill("AC123")
    page.locator("#config-auth_token").fill("twilio-secret-token")
    page.locator("#config-sender").fill("+15550001111")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")

    # The secret is stored, never shown back: not in the input, not anywhere in the page.
    expect(page.locator("#config-auth_token")).to_have_value("")
    expect(page.locator("#config-auth_token")).to_have_attribute(
        "placeholder", "stored: leave empty to keep"
    )
    assert "twilio-secret-token" not in page.content()
    assert studio.api("GET", "/providers/twilio").json()["config"]["auth_token"] == "**********"

    # Saving again without retyping the secret keeps it.
    page.locator("#config-sender").fill("+15550002222")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    config = studio.api("GET", "/providers/twilio").json()["config"]
    assert config["sender"] == "+15550002222"
    assert config["auth_token"] == "**********"


def test_smtp_configured_in_studio_then_the_message_appears_under_messages(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    assert studio.send_segment(ROD).status_code == 202
    wait_for(lambda: _processed(studio, "identify-rod"), what="identify processed")
    sign_in(page, studio)

    page.get_by_role("navigation").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="SMTP").click()
    page.locator("#config-host").fill("127.0.0.1")
    page.locator("#config-port").fill(str(smtp_sink.port))
    page.locator("#config-security").select_option("none")
    page.locator("#config-from_email").fill("notifications@tidings.test")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    smtp = studio.api("GET", "/providers/smtp").json()["config"]
    assert smtp["host"] == "127.0.0.1"
    assert smtp["port"] == smtp_sink.port
    assert smtp["security"] == "none"
    screenshot(page, "provider-smtp")

    page.get_by_role("navigation").get_by_role("link", name="Notifications").click()
    page.get_by_role("link", name="New template").click()
    page.locator("#id").fill("welcome")
    page.locator("#name").fill("Welcome")
    page.get_by_label("Preview with the data of").select_option("identify-rod")
    page.locator("#email-subject").fill("Hello {{ profile.name }}")
    page.locator("#email-text").fill("Your email is {{ data.email }}.")
    # The preview follows the typing, rendered with the chosen event's data.
    expect(page.locator("#preview .preview-email-subject")).to_have_text("Hello Rod")
    expect(page.locator("#preview .preview-email-text")).to_have_text(
        "Your email is rod@example.org."
    )
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    screenshot(page, "notification-editor")

    page.locator("#user_id").fill("rod-test")
    page.get_by_role("button", name=re.compile("Send test")).click()
    # The outcome follows the message until it is sent.
    expect(page.locator("#test-result [role=status]")).to_contain_text("SENT")
    expect(page.locator("#test-result")).to_contain_text("Test message msg_")
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the test email at the SMTP sink")
    assert smtp_sink.messages[0]["Subject"] == "Hello Rod"
    assert smtp_sink.messages[0]["To"] == "rod@example.org"

    page.get_by_role("navigation").get_by_role("link", name="Messages").click()
    row = page.locator("#messages tbody tr").first

    def sent() -> bool:
        page.reload()
        return row.locator(".status").inner_text() == "SENT"

    wait_for(sent, what="the message shown as SENT")
    expect(row).to_contain_text("rod-test")
    expect(row).to_contain_text("welcome")
    expect(row).to_contain_text("email (smtp: sent)")
    # Filters narrow the log.
    page.get_by_label("Status").select_option("UNDELIVERABLE")
    expect(page.locator("#messages")).to_contain_text("No message matches.")
    page.get_by_label("Status").select_option("SENT")
    expect(page.locator("#messages tbody tr")).to_have_count(1)
    screenshot(page, "messages")

    page.locator("#messages tbody tr a").first.click()
    timeline = page.locator(".timeline")
    for stage in ("ENQUEUED", "RENDERED", "ROUTED", "SENT"):
        expect(timeline).to_contain_text(stage)
    expect(page.locator("section", has_text="Rendered output")).to_contain_text("Hello Rod")
    screenshot(page, "message-detail")
