"""Provider health under Settings: messages sent and failed over the last 24 hours, and a
provider's last errors, each linked to its message, from real deliveries."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import free_port, wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import Studio, screenshot, sign_in


def _configure_smtp(studio: Studio, port: int) -> None:
    config = {"host": "127.0.0.1", "port": port, "security": "none", "from_email": "n@tidings.test"}
    answer = studio.api("PUT", "/providers/smtp", json={"config": config})
    assert answer.status_code in (200, 201), answer.text


def _send(studio: Studio, email: str) -> str:
    body = {"message": {"to": {"email": email}, "content": {"title": "Hi", "body": "Hello"}}}
    answer = studio.api("POST", "/send", json=body)
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["requestId"]
    found: list[str] = []

    def accepted() -> bool:
        for message in studio.api("GET", "/messages").json()["results"]:
            if message.get("requestId", message.get("request_id")) == request_id:
                found.append(message["id"])
                return True
        return False

    wait_for(accepted, what="the message accepted")
    return found[0]


def _history(studio: Studio, message_id: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = studio.api("GET", f"/messages/{message_id}/history").json()[
        "results"
    ]
    return results


def _has(studio: Studio, message_id: str, kind: str) -> bool:
    return any(entry["type"] == kind for entry in _history(studio, message_id))


def test_provider_health_shows_a_real_failed_delivery(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _configure_smtp(studio, smtp_sink.port)
    delivered = _send(studio, "ada@example.org")
    wait_for(lambda: _has(studio, delivered, "SENT"), what="the first message SENT")

    # Nothing listens on this loopback port: each attempt fails for real.
    _configure_smtp(studio, free_port())
    failing = [_send(studio, "bob@example.org"), _send(studio, "cy@example.org")]
    for message_id in failing:
        wait_for(lambda m=message_id: _has(studio, m, "PROVIDER_ERROR"), what="a provider error")
    reason = next(
        entry["reason"]
        for entry in _history(studio, failing[-1])
        if entry["type"] == "PROVIDER_ERROR"
    )

    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/settings")
    expect(page.locator(".provider-health[data-provider=smtp]")).to_have_text("1 sent · 2 failed")
    expect(page.locator(".provider-health[data-provider=twilio]")).to_have_text("")

    page.get_by_role("link", name="SMTP").click()
    health = page.locator("#provider-health")
    expect(health.locator("#sent-24h")).to_have_text("1")
    expect(health.locator("#failed-24h")).to_have_text("2")
    newest = health.locator("#provider-errors tbody tr").first
    # Either message's: a retry of the first may fail after the second's last attempt.
    expect(newest).to_contain_text(re.compile("|".join(failing)))
    expect(newest).to_contain_text(reason)
    expect(newest).to_contain_text("email")
    screenshot(page, "provider-health")

    # One error a page: the older page holds the other message's error.
    page.goto(f"{studio.url}/studio/settings/providers/smtp?limit=1")
    rows = page.locator("#provider-errors tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(re.compile("|".join(failing)))
    seen = {rows.get_by_role("link").inner_text()}
    for _ in range(20):  # retries add rows for the same messages; walk until the other one
        if set(failing) <= seen:
            break
        page.get_by_role("link", name="Older →").click()
        expect(rows).to_have_count(1)
        seen.add(rows.get_by_role("link").inner_text())
    assert set(failing) <= seen

    # Each error links to its message's page (the last page walked may hold either one).
    link = rows.get_by_role("link").first
    shown = link.inner_text()
    assert shown in failing
    link.click()
    expect(page).to_have_url(f"{studio.url}/studio/messages/{shown}")
