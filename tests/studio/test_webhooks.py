"""Outbound webhooks in Studio: add an endpoint (its secret shown once), see a delivery and
its answer in the log, replay it, change its event types, rotate its secret and delete it,
each change going through `webhook_out.service`."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, screenshot, sign_in
from tests.webhook_out.receiver import Receiver

# The loopback receiver's fixture (re-exported, so that pytest finds it here).
from tests.webhook_out.receiver import receiver as receiver


def test_an_endpoint_is_added_its_delivery_replayed_and_it_is_deleted_in_studio(
    page: Page, studio: Studio, receiver: Receiver
) -> None:
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Outbound webhooks").click()
    expect(page.get_by_text("No endpoint in this environment yet.")).to_be_visible()

    url = receiver.answer("/studio-hook")
    page.get_by_label("Endpoint URL").fill(url)
    page.get_by_label("Description").fill("Ops alerts")
    page.get_by_role("checkbox", name="event.unmapped").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(url)
    secret = page.locator("#new-secret-value").input_value()
    assert secret.startswith("whsec_")
    endpoint_id = page.get_by_role("heading", level=1).inner_text().split()[1]
    assert endpoint_id.startswith("whe_")
    api_view = studio.api("GET", f"/webhooks/endpoints/{endpoint_id}").json()
    assert api_view["event_types"] == ["event.unmapped"]
    assert api_view["description"] == "Ops alerts"

    # Shown once: the page shows the last four characters only.
    page.goto(f"{studio.url}/studio/webhooks/{endpoint_id}")
    assert secret not in page.content()
    expect(page.locator("#secret-hint")).to_have_text("…" + secret[-4:])

    # An event no automation maps reaches the endpoint, signed; the log shows the answer.
    sent = studio.send_segment(
        {"type": "track", "event": "Cart Viewed", "userId": "u1", "messageId": "m-studio"}
    )
    assert sent.status_code == 202, sent.text
    (request,) = wait_for(lambda: receiver.to("/studio-hook"), what="event.unmapped")
    assert request.verified(secret)["data"]["message_id"] == "m-studio"

    def answered() -> bool:
        page.reload()
        return page.locator("#webhook-deliveries").get_by_text("HTTP 200").count() == 1

    wait_for(answered, what="the answer in the deliveries log")
    log = page.locator("#webhook-deliveries")
    expect(log.get_by_text("succeeded")).to_be_visible()
    expect(log.get_by_text("event.unmapped")).to_be_visible()

    # Replay: the same event again, under the same webhook-id.
    log.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_contain_text("Replay queued")
    first, again = wait_for(
        lambda: receiver.to("/studio-hook")[1:] and receiver.to("/studio-hook"),
        what="the replayed request",
    )
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    expect(page.get_by_text("replay of")).to_be_visible()
    wait_for(lambda: page.reload() or page.get_by_text("HTTP 200").count() == 2, what="answers")
    page.locator("#webhook-deliveries").scroll_into_view_if_needed()
    screenshot(page, "webhooks")

    # Event types are edited with the same checkboxes.
    page.get_by_role("checkbox", name="run.failed").check()
    page.get_by_role("checkbox", name="event.unmapped").uncheck()
    page.get_by_role("button", name="Save endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint saved")
    saved = studio.api("GET", f"/webhooks/endpoints/{endpoint_id}").json()
    assert saved["event_types"] == ["run.failed"]

    # Rotation asks first, then shows the new secret once.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Rotate secret").click()
    new_secret = page.locator("#new-secret-value").input_value()
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    assert "24 hours" in questions[0]

    # Deleting asks first; the list is empty again.
    page.goto(f"{studio.url}/studio/webhooks/{endpoint_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this endpoint").click()
    expect(page.get_by_role("status")).to_contain_text("Endpoint deleted")
    expect(page.get_by_text("No endpoint in this environment yet.")).to_be_visible()
    assert studio.api("GET", f"/webhooks/endpoints/{endpoint_id}").status_code == 404
