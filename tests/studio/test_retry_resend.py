"""A product manager's story: last Tuesday's "Order Shipped" emails failed. In Studio, without
JSON or curl: find them, see why each failed, fix the template, resend them all; and retry a
run from the step that failed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import ADMIN_EMAIL, Studio, screenshot, sign_in

# The template reads a property the events do not have (they send `tracking_url`): strict, so
# each message fails to render and ends UNDELIVERABLE, with the Liquid error as its reason.
ORDER_SHIPPED = {
    "strict": True,
    "content": {
        "email": {
            "subject": "Order {{ data.order_id }} has shipped",
            "text": "Track it at {{ data.tracking_link }}",
        }
    },
    "routing": {"method": "single", "channels": ["email"]},
}
SHIPPING_NOTICE = {
    "name": "Shipping notice",
    "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
    "steps": [
        {"action": "send", "recipient": {"$ref": "event.userId"}, "template": "order-shipped"}
    ],
}
BUYERS = {"buyer-1": "ada@example.org", "buyer-2": "grace@example.org"}


def _ok(response: Any) -> None:
    assert response.status_code in (200, 201, 202, 204), response.text


def _undeliverable(studio: Studio, count: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = studio.api(
        "GET", "/messages", params={"status": "UNDELIVERABLE", "notification": "order-shipped"}
    ).json()["results"]
    return found if len(found) == count else None


def test_failed_order_shipped_messages_are_found_fixed_and_resent(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _ok(studio.api("PUT", "/providers/smtp", json={"config": smtp_sink.provider_config()}))
    _ok(studio.api("PUT", "/notifications/order-shipped", json=ORDER_SHIPPED))
    _ok(studio.api("PUT", "/automations/shipping-notice", json=SHIPPING_NOTICE))
    for number, (user_id, email) in enumerate(BUYERS.items(), start=1):
        _ok(
            studio.send_segment(
                {
                    "messageId": f"id-{user_id}",
                    "type": "identify",
                    "userId": user_id,
                    "traits": {"email": email},
                }
            )
        )
        _ok(
            studio.send_segment(
                {
                    "messageId": f"shipped-{user_id}",
                    "type": "track",
                    "event": "Order Shipped",
                    "userId": user_id,
                    "properties": {
                        "order_id": f"A-{number}",
                        "tracking_url": f"https://t.example/{number}",
                    },
                }
            )
        )
    failed = wait_for(lambda: _undeliverable(studio, 2), what="two UNDELIVERABLE messages")
    sign_in(page, studio)

    # 1. Find them: the failed Order Shipped messages of the day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    page.get_by_role("navigation").get_by_role("link", name="Messages").click()
    page.get_by_label("Status").select_option("UNDELIVERABLE")
    page.get_by_label("Template").fill("order-shipped")
    page.get_by_label("From (UTC)").fill(today.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_label("To (UTC)").fill((today + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#messages tbody tr")
    # The filter's URL is pushed once its last request is answered: wait for it, not just
    # for the rows (the status alone already shows these two).
    expect(page).to_have_url(re.compile(r"status=UNDELIVERABLE.*notification=order-shipped"))
    expect(rows).to_have_count(2)
    filtered_url = page.url

    # 2. See why each failed: the reason, in the list and on the message's page.
    for index in range(2):
        expect(rows.nth(index)).to_contain_text("RENDER_FAILED")
        expect(rows.nth(index)).to_contain_text("email.text: data.tracking_link is undefined")
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("alert")).to_contain_text("data.tracking_link is undefined")
    expect(page.get_by_role("button", name="Resend")).to_be_visible()
    screenshot(page, "message-resend")

    # 3. Fix the template in Studio.
    page.get_by_role("navigation").get_by_role("link", name="Notifications").click()
    page.get_by_role("link", name="order-shipped").first.click()
    page.locator("#email-text").fill("Track it at {{ data.tracking_url }}")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved.")

    # 4. Resend them all, from the filtered list; the question names how many.
    page.goto(filtered_url)
    screenshot(page, "messages-resend")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Resend these 2 messages").click()
    expect(page.get_by_role("status")).to_contain_text("Resent 2 message(s)")
    assert questions[0].startswith("Resend these 2 message(s) that were not sent?")
    # The filters stay; each failed message now links to its new one, and none is offered again.
    expect(rows).to_have_count(2)
    expect(page.locator("#messages")).to_contain_text("resent as msg_", ignore_case=False)
    expect(page.get_by_role("button", name="Resend these 2 messages")).to_have_count(0)

    wait_for(lambda: len(smtp_sink.messages) == 2, what="the two resent emails at the sink")
    received = {message["To"]: message for message in smtp_sink.messages}
    assert set(received) == set(BUYERS.values())
    assert received["ada@example.org"]["Subject"] == "Order A-1 has shipped"
    assert received["ada@example.org"].get_content().strip() == "Track it at https://t.example/1"
    assert received["grace@example.org"].get_content().strip() == "Track it at https://t.example/2"

    # The new message is SENT and says what it is a resend of; the old one links to it.
    first = rows.first
    first.get_by_role("link", name="msg_").last.click()
    resend_of = page.locator("p", has_text="Resend of")
    expect(resend_of).to_be_visible()
    original = resend_of.get_by_role("link").inner_text()
    assert original in {message["id"] for message in failed}

    def sent() -> bool:
        page.reload()
        return page.locator("h1 .status").inner_text() == "SENT"

    wait_for(sent, what="the resent message shown as SENT")
    expect(page.get_by_role("button", name="Resend")).to_have_count(0)
    page.get_by_role("link", name=original).click()
    expect(page.get_by_text("Resent as")).to_be_visible()
    expect(page.get_by_role("button", name="Resend")).to_have_count(0)
    expect(page.locator(".timeline")).to_contain_text("RESENT")


def test_one_message_is_resent_from_its_page(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _ok(studio.api("PUT", "/providers/smtp", json={"config": smtp_sink.provider_config()}))
    _ok(studio.api("PUT", "/notifications/order-shipped", json=ORDER_SHIPPED))
    _ok(studio.api("PUT", "/profiles/buyer-1", json={"profile": {"email": "ada@example.org"}}))
    _ok(
        studio.api(
            "POST",
            "/send",
            json={
                "message": {
                    "to": {"user_id": "buyer-1"},
                    "template": "order-shipped",
                    "data": {"order_id": "A-9", "tracking_url": "https://t.example/9"},
                }
            },
        )
    )
    (failed,) = wait_for(lambda: _undeliverable(studio, 1), what="an UNDELIVERABLE message")
    fixed = {
        **ORDER_SHIPPED,
        "content": {"email": {"subject": "Shipped", "text": "Track it at {{ data.tracking_url }}"}},
    }
    _ok(studio.api("PUT", "/notifications/order-shipped", json=fixed))

    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/messages/{failed['id']}")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Resend").click()
    expect(page.get_by_text("Resend of")).to_contain_text(failed["id"])
    assert questions == [
        f"Resend {failed['id']} to buyer-1? It is rendered again with template order-shipped as "
        "it is now, and sent as a new message; this one keeps its history, with a link to the "
        "new."
    ]
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the resent email at the sink")
    assert smtp_sink.messages[0].get_content().strip() == "Track it at https://t.example/9"
    history = studio.api("GET", f"/messages/{failed['id']}/history").json()["results"]
    assert history[-1]["type"] == "RESENT"
    assert history[-1]["by"] == f"Studio: {ADMIN_EMAIL}"


BROKEN = {
    "name": "Broken",
    "triggers": [{"source": "segment", "event": "track/Broken"}],
    "steps": [
        {"action": "update-profile", "profile": {"seen": True}},
        {"action": "send", "recipient": {"$ref": "event.userId"}, "template": "gone"},
    ],
}


def test_a_failed_run_is_retried_from_its_failed_step(page: Page, studio: Studio) -> None:
    # Saved while its template existed; the template is deleted since: step 2 fails.
    _ok(studio.api("PUT", "/notifications/gone", json={"content": {"sms": {"text": "Hi"}}}))
    _ok(studio.api("PUT", "/automations/broken", json=BROKEN))
    _ok(studio.api("DELETE", "/notifications/gone"))
    _ok(
        studio.send_segment(
            {"messageId": "broken-1", "type": "track", "event": "Broken", "userId": "u1"}
        )
    )

    def failed_run() -> str | None:
        found = studio.api("GET", "/automations/runs", params={"status": "ERROR"}).json()["runs"]
        return found[0]["run_id"] if found else None

    run_id: str = wait_for(failed_run, what="a run in ERROR")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/runs/{run_id}")
    expect(page.locator("h1 .status")).to_have_text("ERROR")
    expect(page.locator("p.error")).to_contain_text("gone")
    # The cause is fixed: the template exists again.
    _ok(studio.api("PUT", "/notifications/gone", json={"content": {"sms": {"text": "Hi"}}}))

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    # The retry's form posts and comes back to this page: a reload before that has landed
    # would cut the navigation short.
    with page.expect_navigation():
        page.get_by_role("button", name="Retry from the failed step").click()
    assert questions == [
        f"Retry run {run_id} from step 2 (send)? That step runs again, then the steps after "
        "it; the steps before it are not repeated."
    ]

    def processed() -> bool:
        page.reload()
        return page.locator("h1 .status").inner_text() == "PROCESSED"

    wait_for(processed, what="the retried run shown as PROCESSED")
    retries = page.locator("ol[aria-labelledby=retries-title] li")
    expect(retries).to_have_count(1)
    expect(retries).to_contain_text("Retried from step 2. send")
    expect(retries).to_contain_text(f"by Studio: {ADMIN_EMAIL}")
    expect(retries).to_contain_text("gone")
    steps = page.locator(
        "section[aria-labelledby=steps-title] > ol.timeline:not([aria-labelledby]) > li"
    )
    expect(steps).to_have_count(2)
    expect(steps.nth(1).locator(".status")).to_have_text("PROCESSED")
    expect(page.get_by_role("button", name="Retry from the failed step")).to_have_count(0)
    screenshot(page, "run-retried")
