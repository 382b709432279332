"""Signed sources in Studio: create, rotate (the new secret shown once), refused signatures
counted, delete a secret and the source, each change going through `ingest.sources`."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.processes import HTTP_TIMEOUT
from tests.studio.conftest import Studio, screenshot, sign_in


def _signed(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def _webhook(url: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    return httpx.post(url, content=body, headers=headers, timeout=HTTP_TIMEOUT)


def _event(message_id: str) -> bytes:
    return json.dumps(
        {"type": "track", "event": "Order Shipped", "userId": "ada", "messageId": message_id}
    ).encode()


def _stored(studio: Studio, message_id: str) -> bool:
    answer = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return answer.status_code == 200


def test_a_source_is_created_rotated_and_deleted_in_studio(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.get_by_role("navigation").get_by_role("link", name="Signed sources").click()
    expect(page.get_by_text("No signed source in this environment yet.")).to_be_visible()

    page.get_by_label("New source named").fill("Segment webhooks")
    page.get_by_role("button", name="Create source").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Segment webhooks")
    first_secret = page.locator("#new-secret-value").input_value()
    assert len(first_secret) >= 16
    expect(page.get_by_role("button", name="Copy").first).to_be_visible()
    url = page.locator("#webhook-url").input_value()
    source_id = url.rsplit("/", 1)[1]
    assert url == f"{studio.url}/inbound/segment/webhook/{source_id}"
    # The page is the API's view of the source: same secret hint, same URL.
    api_view = studio.api("GET", f"/sources/{source_id}").json()
    assert api_view["secrets"][0]["hint"] == "…" + first_secret[-4:]
    assert api_view["url"] == url

    # A webhook signed with the new secret is accepted and its event stored.
    body = _event("signed-1")
    assert _webhook(url, body, _signed(first_secret, body)).status_code == 200
    wait_for(lambda: _stored(studio, "signed-1"), what="the signed event stored")

    # Shown once: reopening the source shows the last four characters only.
    page.goto(f"{studio.url}/studio/sources/{source_id}")
    assert first_secret not in page.content()
    expect(page.get_by_role("cell", name="…" + first_secret[-4:])).to_be_visible()
    expect(page.locator("#signature-failures")).to_have_text("0")

    # A wrong signature is refused and counted.
    bad = _event("forged-1")
    assert _webhook(url, bad, _signed("not the secret at all!", bad)).status_code == 401
    page.reload()
    expect(page.locator("#signature-failures")).to_have_text("1")
    expect(page.get_by_text("1 request refused")).to_be_visible()

    # Rotation: a second secret, shown once; both are accepted meanwhile.
    page.get_by_role("button", name="Add a secret").click()
    second_secret = page.locator("#new-secret-value").input_value()
    assert second_secret != first_secret
    expect(page.get_by_role("status")).to_contain_text("it is shown this once")
    body = _event("signed-2")
    assert _webhook(url, body, _signed(second_secret, body)).status_code == 200
    body = _event("signed-3")
    assert _webhook(url, body, _signed(first_secret, body)).status_code == 200
    wait_for(lambda: _stored(studio, "signed-2"), what="the event signed with the new secret")
    screenshot(page, "sources")

    # Deleting the old secret asks first, naming the consequence.
    page.goto(f"{studio.url}/studio/sources/{source_id}")
    questions: list[str] = []
    old_row = page.get_by_role("row").filter(has_text="…" + first_secret[-4:])
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    old_row.get_by_role("button", name="Delete").click()
    assert len(questions) == 1
    assert f"Requests signed with …{first_secret[-4:]} will get 401" in questions[0]
    assert len(studio.api("GET", f"/sources/{source_id}").json()["secrets"]) == 2
    page.once("dialog", lambda dialog: dialog.accept())
    old_row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Secret deleted")
    hints = [
        secret["hint"] for secret in studio.api("GET", f"/sources/{source_id}").json()["secrets"]
    ]
    assert hints == ["…" + second_secret[-4:]]

    # The old secret is now refused, and counted.
    body = _event("signed-4")
    assert _webhook(url, body, _signed(first_secret, body)).status_code == 401
    page.reload()
    expect(page.locator("#signature-failures")).to_have_text("2")

    # Deleting the source asks first; its URL then answers 404.
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete this source").click()
    expect(page.get_by_role("status")).to_contain_text("Source deleted")
    assert "will answer 404" in questions[-1]
    expect(page.get_by_text("No signed source in this environment yet.")).to_be_visible()
    body = _event("signed-5")
    assert _webhook(url, body, _signed(second_secret, body)).status_code == 404


def test_a_duplicate_name_is_refused_at_the_field(page: Page, studio: Studio) -> None:
    assert studio.api("POST", "/sources", json={"name": "Webhooks"}).status_code == 201
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/sources")
    page.get_by_label("New source named").fill("Webhooks")
    page.get_by_role("button", name="Create source").click()
    expect(page.locator("#source-name-error")).to_contain_text("already exists")
    expect(page.get_by_label("New source named")).to_have_value("Webhooks")
    assert len(studio.api("GET", "/sources").json()["results"]) == 1
