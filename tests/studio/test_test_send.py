"""A test send from the template editor: with typed data or a picked event's, and the message's
real outcome as it progresses, linked to the message."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import Studio, sign_in

ORDER = {
    "messageId": "order-rod",
    "type": "track",
    "event": "Order Shipped",
    "properties": {"order_id": "from-the-event"},
    "userId": "rod-test",
}
TEMPLATE = {"content": {"email": {"subject": "Order {{ data.order_id }}", "text": "Shipped."}}}


def _set_up(studio: Studio, smtp_sink: SmtpSink) -> None:
    smtp = {"host": "127.0.0.1", "port": smtp_sink.port, "security": "none"}
    smtp["from_email"] = "notifications@tidings.test"
    assert studio.api("PUT", "/providers/smtp", json={"config": smtp}).status_code == 201
    profile = {"profile": {"email": "rod@example.org", "name": "Rod"}}
    assert studio.api("POST", "/profiles/rod-test", json=profile).status_code == 200
    assert studio.api("PUT", "/notifications/shipped", json=TEMPLATE).status_code == 201
    assert studio.send_segment(ORDER).status_code == 202
    wait_for(
        lambda: studio.api("GET", "/integrations/segment/events/order-rod").status_code == 200,
        what="the event stored",
    )


def test_a_test_send_with_typed_data_to_the_picked_events_user(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _set_up(studio, smtp_sink)
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/shipped")
    page.get_by_label("Preview with the data of").select_option("order-rod")

    page.locator("#test-data").fill('{"order_id": "typed-A1"')
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result .error")).to_contain_text("data: not valid JSON")

    # No user id typed: the picked event's user; typed data wins over the event's.
    page.locator("#test-data").fill('{"order_id": "typed-A1"}')
    page.get_by_role("button", name="Send test").click()
    outcome = page.locator("#test-result [role=status]")
    expect(outcome).to_contain_text("SENT")
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the test email at the SMTP sink")
    assert smtp_sink.messages[0]["Subject"] == "Order typed-A1"
    assert smtp_sink.messages[0]["To"] == "rod@example.org"

    # Without typed data, the picked event's properties are the data.
    page.locator("#test-data").fill("")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result [role=status]")).to_contain_text("SENT")
    wait_for(lambda: len(smtp_sink.messages) == 2, what="the second test email")
    assert smtp_sink.messages[1]["Subject"] == "Order from-the-event"

    # The outcome links to the message.
    page.locator("#test-result a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("msg_")


def test_a_test_send_that_cannot_be_delivered_says_so(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _set_up(studio, smtp_sink)
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/shipped")
    page.locator("#user_id").fill("no-such-user")
    page.get_by_role("button", name="Send test").click()
    outcome = page.locator("#test-result [role=status]")
    expect(outcome).to_contain_text("UNROUTABLE")
    expect(outcome).not_to_contain_text("SENT")
    assert smtp_sink.messages == []
