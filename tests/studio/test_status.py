"""Statuses say what happened: a processed event whose message was not sent is not a plain
success, and colours tell done, under way, stopped and failed apart."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, sign_in

IDENTIFY = {
    "messageId": "identify-nomail",
    "type": "identify",
    "traits": {"name": "No Mail"},
    "userId": "nomail",
}
WELCOME = {
    "name": "Welcome",
    "triggers": [{"source": "segment", "event": "identify"}],
    "steps": [{"action": "send", "template": "welcome"}],
}
RED = "rgb(179, 38, 30)"
GREEN = "rgb(28, 124, 60)"


def _message_status(studio: Studio) -> str | None:
    found = studio.api("GET", "/messages").json()["results"]
    return found[0]["status"] if found else None


def test_an_event_whose_message_was_not_sent_says_so(page: Page, studio: Studio) -> None:
    template = {"content": {"email": {"subject": "Welcome", "text": "Hello"}}}
    assert studio.api("PUT", "/notifications/welcome", json=template).status_code == 201
    assert studio.api("PUT", "/automations/welcome", json=WELCOME).status_code == 201
    # No email provider, and the user has no email: the message ends UNROUTABLE.
    assert studio.send_segment(IDENTIFY).status_code == 202
    wait_for(lambda: _message_status(studio) == "UNROUTABLE", what="the message UNROUTABLE")
    sign_in(page, studio)

    page.goto(f"{studio.url}/studio/events/identify-nomail")
    heading = page.get_by_role("heading", level=1)
    expect(heading.locator(".status").first).to_have_text("processed")
    expect(heading.locator(".outcome")).to_have_text("1 message not sent")
    expect(heading.locator(".outcome")).to_have_css("color", RED)
    expect(heading.locator(".status").first).to_have_css("color", GREEN)

    messages = page.locator("section[aria-labelledby=messages-title]")
    expect(messages.get_by_role("heading", name="Messages")).to_be_visible()
    expect(messages.locator(".status")).to_have_text("UNROUTABLE")
    expect(messages.locator(".status")).to_have_css("color", RED)

    expect(page.locator("section[aria-labelledby=automations-title] .status")).to_have_text(
        "PROCESSED"
    )


def test_each_status_has_the_colour_of_what_it_means(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    colours = page.evaluate(
        """statuses => Object.fromEntries(statuses.map(status => {
            const badge = document.createElement("span");
            badge.className = `status status-${status.toLowerCase()}`;
            document.body.append(badge);
            return [status, getComputedStyle(badge).color];
        }))""",
        list(EXPECTED),
    )
    assert colours == EXPECTED


DONE, UNDER_WAY, STOPPED, FAILED = GREEN, "rgb(47, 91, 211)", "rgb(154, 98, 0)", RED
EXPECTED = {
    "PROCESSED": DONE,
    "SENT": DONE,
    "WAITING": UNDER_WAY,
    "PROCESSING": UNDER_WAY,
    "ENQUEUED": UNDER_WAY,
    "CANCELED": STOPPED,
    "FILTERED": STOPPED,
    "ERROR": FAILED,
    "UNROUTABLE": FAILED,
    "UNDELIVERABLE": FAILED,
    "failed": FAILED,
}
