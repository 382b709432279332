"""Broadcasts in Studio: one made from the form goes live to completed with its counts and
the SMTP sink's emails; pause, resume and cancel of a scheduled and of a slow broadcast;
errors shown at their fields; escaping, CSRF, and an action refused on the page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Keys, Serve, wait_for
from tests.smtp_sink import SmtpSink
from tests.studio.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Studio, screenshot, sign_in
from tidings.runtime import Runtime
from tidings.studio.auth import set_admin_password

NEWS = {
    "name": "News",
    "content": {"email": {"subject": "Issue {{ data.issue }}", "text": "Hello {{ profile.name }}"}},
}
READERS = {"ada": "Ada", "grace": "Grace", "linus": "Linus"}


def _ok(response: httpx.Response) -> None:
    assert response.status_code < 300, response.text


def _readers(studio: Studio, smtp_sink: SmtpSink) -> None:
    """An SMTP provider, the template `news` and the list `readers` of three users with an
    email address each."""
    _ok(studio.api("PUT", "/providers/smtp", json={"config": smtp_sink.provider_config()}))
    _ok(studio.api("PUT", "/notifications/news", json=NEWS))
    for user_id, name in READERS.items():
        profile = {"email": f"{user_id}@example.org", "name": name}
        _ok(studio.api("PUT", f"/profiles/{user_id}", json={"profile": profile}))
    recipients = [{"recipientId": user_id} for user_id in READERS]
    _ok(studio.api("PUT", "/lists/readers/subscriptions", json={"recipients": recipients}))


def _new_broadcast(page: Page, studio: Studio) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Broadcasts").click()
    page.get_by_role("link", name="New broadcast").click()
    expect(page.get_by_role("heading", name="New broadcast")).to_be_visible()
    page.get_by_label("Template").select_option("news")
    page.get_by_label("List", exact=True).check()
    page.get_by_label("List id").select_option("readers")


def _broadcast(studio: Studio, broadcast_id: str) -> dict[str, Any]:
    response = studio.api("GET", f"/broadcasts/{broadcast_id}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _shown_id(page: Page) -> str:
    match = re.search(r"/studio/broadcasts/([^/?]+)", page.url)
    assert match, page.url
    return match.group(1)


def test_a_broadcast_made_in_the_form_reaches_completed_live_and_its_emails_arrive(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _readers(studio, smtp_sink)
    sign_in(page, studio)
    _new_broadcast(page, studio)
    page.get_by_label("Data (JSON)").fill('{"issue": 7}')
    page.get_by_role("button", name="Create broadcast").click()

    expect(page.get_by_role("status")).to_contain_text("Broadcast created.")
    broadcast_id = _shown_id(page)
    assert broadcast_id.startswith("bc_")
    expect(page.locator("#broadcast-template")).to_have_text("news")
    expect(page.locator("#broadcast-target")).to_have_text("List readers")
    expect(page.locator("#broadcast-data")).to_contain_text('"issue": 7')

    # The page refreshes itself until every message is sent, then stops.
    live = page.locator("#broadcast-live")
    expect(page.locator("#broadcast-status")).to_have_text("completed")
    expect(page.locator("#broadcast-progress")).to_have_text("sent 3 of 3")
    expect(live).not_to_have_attribute("hx-get", re.compile(".*"))
    for name, count in {"targeted": 3, "sent": 3, "suppressed": 0, "failed": 0}.items():
        expect(page.locator(f"#count-{name}")).to_have_text(str(count))
    expect(page.locator("#broadcast-bar")).to_have_attribute("value", "3")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    screenshot(page, "broadcast")

    emails = wait_for(lambda: len(smtp_sink.messages) == 3 and smtp_sink.messages)
    assert sorted(str(email["To"]) for email in emails) == [
        f"{user_id}@example.org" for user_id in sorted(READERS)
    ]
    assert {str(email["Subject"]) for email in emails} == {"Issue 7"}
    answer = _broadcast(studio, broadcast_id)
    assert answer["status"] == "completed"
    assert answer["counts"]["sent"] == 3

    # The list shows it with its progress.
    page.get_by_role("link", name="← Broadcasts").click()
    row = page.locator("#broadcasts tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text(broadcast_id)
    expect(row.locator("td").nth(2)).to_have_text("List readers")
    expect(row.locator("td").nth(3)).to_have_text("completed")
    expect(row.locator("td").nth(4)).to_have_text("sent 3 of 3")


def test_a_scheduled_broadcast_is_paused_resumed_and_canceled_after_asking(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _readers(studio, smtp_sink)
    sign_in(page, studio)
    _new_broadcast(page, studio)
    page.get_by_label("Send at (UTC, optional)").fill("2030-01-07T08:00:00")
    page.get_by_label("Mon").check()
    page.get_by_label("Fri").check()
    page.get_by_label("From").fill("09:00")
    page.get_by_label("to", exact=True).fill("18:00")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_label("Id (optional)").fill("issue-7")
    page.get_by_role("button", name="Create broadcast").click()

    expect(page).to_have_url(f"{studio.url}/studio/broadcasts/issue-7?flash=created")
    expect(page.locator("#broadcast-status")).to_have_text("scheduled")
    answer = _broadcast(studio, "issue-7")
    assert answer["send_at"].startswith("2030-01-07T08:00:00")
    assert answer["window"] == {
        "days": ["mon", "fri"],
        "hours": {"start": "09:00", "end": "18:00"},
        "timezone": "Europe/Paris",
    }
    assert answer["status"] == "scheduled"

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("Broadcast paused")
    expect(page.locator("#broadcast-status")).to_have_text("paused")
    assert _broadcast(studio, "issue-7")["status"] == "paused"
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)

    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("Broadcast resumed")
    expect(page.locator("#broadcast-status")).to_have_text("scheduled")
    assert _broadcast(studio, "issue-7")["status"] == "scheduled"

    # Cancel asks first; dismissed, nothing happens.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Cancel").click()
    assert "Cancels the broadcast issue-7 for good" in questions[0]
    assert _broadcast(studio, "issue-7")["status"] == "scheduled"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_contain_text("Broadcast canceled")
    expect(page.locator("#broadcast-status")).to_have_text("canceled")
    expect(page.locator("#broadcast-live")).not_to_have_attribute("hx-get", re.compile(".*"))
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    answer = _broadcast(studio, "issue-7")
    assert answer["status"] == "canceled"
    assert answer["counts"]["targeted"] == 0
    assert smtp_sink.messages == []


@pytest.fixture
def slow_studio(serve: Serve, runtime: Runtime, keys: Keys) -> Studio:
    """Studio on a server whose broadcasts release one recipient every five seconds."""
    server = serve(TIDINGS_BROADCAST_RATE="0.2")
    with runtime.database.write() as (session, _):
        set_admin_password(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    return Studio(server, keys.test, server.log_path)


def test_a_running_broadcast_is_paused_then_resumed_to_completed(
    page: Page, slow_studio: Studio, smtp_sink: SmtpSink
) -> None:
    studio = slow_studio
    _readers(studio, smtp_sink)
    sign_in(page, studio)
    _new_broadcast(page, studio)
    page.get_by_role("button", name="Create broadcast").click()
    expect(page.locator("#broadcast-status")).to_have_text("running")
    broadcast_id = _shown_id(page)

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#broadcast-status")).to_have_text("paused")
    paused = _broadcast(studio, broadcast_id)
    assert paused["status"] == "paused"
    assert paused["counts"]["targeted"] < 3

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#broadcast-status")).to_have_text("running")
    expect(page.locator("#broadcast-status")).to_have_text("completed")
    expect(page.locator("#broadcast-progress")).to_have_text("sent 3 of 3")
    wait_for(lambda: len(smtp_sink.messages) == 3, what="three emails")


def test_errors_are_shown_at_their_fields_and_nothing_is_made(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _readers(studio, smtp_sink)
    sign_in(page, studio)
    _new_broadcast(page, studio)

    # The service's own check: the tenant does not exist.
    page.get_by_label("Tenant", exact=True).check()
    page.get_by_label("Tenant id").fill("nobody")
    page.get_by_role("button", name="Create broadcast").click()
    error = page.locator("#tenant_id-error")
    expect(error).to_contain_text("to.tenant_id: no tenant 'nobody'")
    expect(page.get_by_label("Tenant id")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Tenant id")).to_have_value("nobody")

    # The data is not JSON.
    page.get_by_label("List", exact=True).check()
    page.get_by_label("Data (JSON)").fill("{oops")
    page.get_by_role("button", name="Create broadcast").click()
    expect(page.locator("#data-error")).to_contain_text("data: not valid JSON")
    expect(page.get_by_label("Data (JSON)")).to_have_value("{oops")

    # A window with a start and no end.
    page.get_by_label("Data (JSON)").fill("{}")
    page.get_by_label("From").fill("09:00")
    page.get_by_role("button", name="Create broadcast").click()
    expect(page.locator("#window_end-error")).to_contain_text("window.hours.end: needed")
    expect(page.get_by_label("Template")).to_have_value("news")
    expect(page.get_by_label("List id")).to_have_value("readers")

    assert studio.api("GET", "/broadcasts").json()["items"] == []


def test_hostile_data_shows_as_text_and_refused_actions_change_nothing(
    page: Page, studio: Studio, smtp_sink: SmtpSink
) -> None:
    _readers(studio, smtp_sink)
    hostile = "<img src=x onerror=\"window.__xss = 'img'\"><script>window.__xss = 1</script>"
    body = {
        "broadcast_id": "hostile",
        "template": "news",
        "to": {"list_id": "readers"},
        "data": {"html": hostile},
        "send_at": "2030-01-07T08:00:00Z",
    }
    assert studio.api("POST", "/broadcasts", json=body).status_code == 202
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/broadcasts/hostile")
    expect(page.locator("#broadcast-data")).to_contain_text("<script>window.__xss = 1</script>")
    assert page.evaluate("window.__xss") is None

    # The tenant typed is shown back in the error, as text.
    page.goto(f"{studio.url}/studio/broadcasts/_new")
    page.get_by_label("Template").select_option("news")
    page.get_by_label("Tenant", exact=True).check()
    page.get_by_label("Tenant id").fill(hostile)
    page.get_by_role("button", name="Create broadcast").click()
    expect(page.locator("#tenant_id-error")).to_contain_text("<script>window.__xss = 1</script>")
    assert page.evaluate("window.__xss") is None

    refused = page.request.post(f"{studio.url}/studio/broadcasts/hostile/cancel", form={})
    assert refused.status == 403
    assert refused.json()["code"] == "csrf_failed"
    assert _broadcast(studio, "hostile")["status"] == "scheduled"

    # A page left open on a broadcast canceled meanwhile: Pause answers why not, on the page.
    page.goto(f"{studio.url}/studio/broadcasts/hostile")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    _ok(studio.api("POST", "/broadcasts/hostile/cancel"))
    late = page.request.post(
        f"{studio.url}/studio/broadcasts/hostile/pause", form={"csrf_token": token}
    )
    assert late.status == 409
    said = 'id="form-error">Broadcast &#39;hostile&#39; is canceled and cannot be paused.'
    assert said in late.text()
    assert _broadcast(studio, "hostile")["status"] == "canceled"
