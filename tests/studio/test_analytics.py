"""The Analytics page: the totals, the time series and the funnel (server-drawn SVG, with
titles and tables of the same figures), and its filters, for messages sent to the SMTP sink
by a live server."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import Studio, screenshot, sign_in

TEMPLATE = {"content": {"email": {"subject": "Receipt {{ data.n }}", "text": "Thanks."}}}


def send_three(studio: Studio, sink: SmtpSink) -> None:
    assert studio.api("PUT", "/providers/smtp", json={"config": sink.provider_config()}).is_success
    assert studio.api("PUT", "/notifications/receipt", json=TEMPLATE).is_success
    assert studio.api(
        "POST", "/profiles/u1", json={"profile": {"email": "ada@example.org"}}
    ).is_success
    for n in range(3):
        message = {"to": {"user_id": "u1"}, "template": "receipt", "data": {"n": n}}
        assert studio.api("POST", "/send", json={"message": message}).status_code == 202

    def counted() -> bool:
        found = studio.api("GET", "/analytics/messages").json()
        return bool(found["totals"]["sent"] == 3)

    wait_for(counted, what="three sends counted")


def test_analytics_shows_totals_a_time_series_and_a_funnel_with_filters(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    send_three(studio, smtp_sink)
    sign_in(page, studio)
    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics", level=1)).to_be_visible()
    expect(page.locator('dd[data-metric="sent"]')).to_have_text("3")
    expect(page.locator('dd[data-metric="opened"]')).to_have_text("0")

    # The charts are images with a title, and their figures are in tables too.
    series = page.get_by_role("img", name="Messages over time")
    expect(series).to_be_visible()
    expect(series.locator("polyline.series")).to_have_count(5)
    funnel = page.get_by_role("img", name="Funnel: sent, delivered, opened, clicked")
    expect(funnel.locator("g.funnel-stage")).to_have_count(4)
    expect(funnel.locator('g[data-stage="sent"] text').last).to_have_text("3 · 100%")
    rows = page.locator(".funnel-table tbody tr")
    expect(rows.locator("th")).to_have_text(["Sent", "Delivered", "Opened", "Clicked"])
    expect(rows.nth(0).locator("td")).to_have_text(["3", "100.0%", "\u2013"])
    expect(rows.nth(1).locator("td")).to_have_text(["0", "0.0%", "0.0%"])
    page.get_by_text("Figures per day").click()
    days = page.locator(".series-table tbody tr")
    expect(days).to_have_count(30)
    expect(days.last.locator("td").first).to_have_text("3")
    screenshot(page, "analytics")

    # Filters: the template is offered from what was counted; another channel has nothing.
    page.locator("#template").select_option("receipt")
    page.locator("#channel").select_option("sms")
    page.get_by_role("button", name="Show").click()
    assert "template=receipt" in page.url
    assert "channel=sms" in page.url
    expect(page.locator('dd[data-metric="sent"]')).to_have_text("0")
    page.locator("#channel").select_option("email")
    page.locator("#period").select_option("24h")
    page.get_by_role("button", name="Show").click()
    expect(page.locator('dd[data-metric="sent"]')).to_have_text("3")
    page.get_by_text("Figures per hour").click()
    expect(page.locator(".series-table tbody tr")).to_have_count(24)

    # A value Studio cannot use is reported, not ignored.
    page.goto(f"{studio.url}/studio/analytics?channel=fax")
    expect(page.get_by_role("alert")).to_contain_text("Channel: 'fax' is not one of")
    expect(page.locator("#channel")).to_have_attribute("aria-invalid", "true")
