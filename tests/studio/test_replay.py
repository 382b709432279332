"""The editor's "What would change": the draft replayed over recent events, before saving."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.payloads import identify, track
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import Studio, screenshot, sign_in

SHIPPED = {"content": {"email": {"subject": "Order {{ data.order_id }} shipped", "text": "x"}}}
SHORT = {"content": {"email": {"subject": "Shipped!", "text": "On its way"}}}
AUTOMATION = {
    "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
    "steps": [{"action": "send", "template": "shipped"}],
}


def _live(studio: Studio, smtp_sink: SmtpSink) -> None:
    put = [
        ("/providers/smtp", {"config": smtp_sink.provider_config()}),
        ("/notifications/shipped", SHIPPED),
        ("/notifications/shipped-short", SHORT),
        ("/automations/order-shipped", AUTOMATION),
    ]
    for path, body in put:
        assert studio.api("PUT", path, json=body).status_code in (200, 201)
    for user in ("u1", "u2"):
        event = identify(messageId=f"id-{user}", userId=user, traits={"email": f"{user}@x.org"})
        assert studio.send_segment(event).status_code == 202
    for number, user in ((1, "u1"), (2, "u2")):
        body = track(
            messageId=f"m{number}",
            userId=user,
            event="Order Shipped",
            properties={"order_id": number},
        )
        assert studio.send_segment(body).status_code == 202
    wait_for(lambda: len(smtp_sink.messages) == 2 or None, what="two emails")


def test_what_would_change_replays_the_unsaved_draft(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _live(studio, smtp_sink)
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/order-shipped")
    page.locator("#steps-0-template").select_option("shipped-short")
    page.get_by_role("button", name="What would change").click()

    panel = page.locator("#replay-panel")
    expect(panel.locator("#replay-summary")).to_contain_text(
        "this draft would send 2 messages where the automation sent 2: 2 added, 2 removed, "
        "0 changed, 0 unchanged",
        timeout=120_000,
    )
    expect(panel.locator("table.replay-added tbody tr")).to_have_count(2)
    expect(panel.locator("table.replay-added")).to_contain_text("Shipped!")
    expect(panel.locator("table.replay-removed")).to_contain_text("Order 1 shipped")
    panel.scroll_into_view_if_needed()
    screenshot(page, "automation-replay")

    # Nothing was saved or sent; the draft is still in the editor, ready to save.
    assert studio.api("GET", "/automations/order-shipped").json()["steps"][0]["template"] == (
        "shipped"
    )
    assert len(smtp_sink.messages) == 2
    expect(page.locator("#steps-0-template")).to_have_value("shipped-short")

    # The replay's page lists each event that would change.
    panel.get_by_role("link", name="Each event that would change").click()
    rows = page.locator("#replay-events tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("m1")
    expect(rows.first).to_contain_text("Shipped!")
    expect(rows.first).to_contain_text("Order 1 shipped")


def test_a_draft_with_an_error_is_not_replayed(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _live(studio, smtp_sink)
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/order-shipped")
    page.get_by_role("button", name="JSON", exact=True).click()
    page.locator("#steps").fill('[{"action": "send", "template": "no-such-template"}]')
    page.get_by_role("button", name="What would change").click()
    expect(page.locator("#replay-error")).to_contain_text("steps[0].template")
    listed = studio.api("GET", "/automations/order-shipped/replays").json()
    assert listed["results"] == []
