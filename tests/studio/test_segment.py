"""Integrations → Segment: empty state, live list, and the event detail."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, screenshot, sign_in

IDENTIFY = {
    "messageId": "segment-test-message-iskh4123",
    "timestamp": "2024-05-21T18:00:18.913Z",
    "type": "identify",
    "email": "test@example.org",
    "traits": {"trait1": 2, "email": "test@example.org"},
    "userId": "rod-test",
}
TRACK = {
    "messageId": "segment-test-message-a8rmf",
    "timestamp": "2021-12-07T08:41:59.410Z",
    "type": "track",
    "email": "test@example.org",
    "projectId": "4GgKeBoVJkT9EZL4vAmduv",
    "properties": {"property1": 1, "property2": "test", "property3": True},
    "userId": "test-user-cqw3gr",
    "event": "Segment Test Event Name",
}


def test_empty_state_reads_exactly_and_lists_the_checklist(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    empty = page.locator("#events .empty")
    expect(empty.locator("p").first).to_have_text("No Segment events received yet.")
    items = empty.locator("ol > li")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_text(
        "Double-check that your API Key was copied accurately into Segment."
    )
    expect(items.nth(1)).to_contain_text("If it is at the top level of an identify call")
    # The key of each environment, hidden until revealed (as under Settings), then copyable.
    assert studio.key not in page.content()
    expect(page.locator("#keys-title ~ .row .key-scope").first).to_have_text("secret")
    page.get_by_role("button", name="Reveal").first.click()
    expect(page.locator("input.key").first).to_have_value(studio.key)
    expect(page.get_by_role("button", name="Copy").first).to_be_visible()
    screenshot(page, "segment-empty")


def test_events_appear_without_a_reload(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    expect(page.get_by_text("No Segment events received yet.")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    assert studio.send_segment(IDENTIFY).status_code == 202
    assert studio.send_segment(TRACK).status_code == 202

    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(2)
    # Newest first: the track, then the identify; with type, name, user and status.
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("track")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text("track/Segment Test Event Name")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("test-user-cqw3gr")
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("identify")
    expect(rows.nth(1).locator("td").nth(2)).to_have_text("rod-test")
    expect(rows.nth(1).locator(".status")).to_have_text("processed")
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "segment-events")


def test_event_detail_shows_diagnostic_profile_diff_and_raw_json(
    page: Page, studio: Studio
) -> None:
    assert studio.send_segment(IDENTIFY).status_code == 202
    sign_in(page, studio)
    page.get_by_role("link", name="identify").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("identify")
    expect(page.locator("h1 .status")).to_have_text("processed")
    page.reload()

    diagnostic = page.locator("[data-code='top_level_email']")
    expect(diagnostic).to_contain_text("email is at the top level of this identify")
    expect(diagnostic.locator("code").first).to_have_text("email")  # `email`, shown as code
    expect(diagnostic).to_contain_text("Move it into traits")

    diff_rows = page.locator("table.diff tbody tr")
    expect(diff_rows).to_have_count(2)
    expect(diff_rows.nth(0)).to_contain_text("add")
    expect(diff_rows.nth(0)).to_contain_text("/email")
    expect(diff_rows.nth(0)).to_contain_text('"test@example.org"')
    expect(diff_rows.nth(1)).to_contain_text("/trait1")

    raw = page.locator("#raw-json")
    expect(raw).to_contain_text('"messageId": "segment-test-message-iskh4123"')
    expect(raw).to_contain_text('"trait1": 2')
    expect(page.get_by_text("unmapped", exact=True)).to_be_visible()
    screenshot(page, "event-detail")
