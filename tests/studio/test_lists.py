"""Every list pages, keeps its filters in the URL, and reports a filter it cannot use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from playwright.sync_api import Locator, Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, screenshot, sign_in


def _track(number: int, user: str, name: str = "Order Shipped") -> dict[str, Any]:
    return {
        "messageId": f"list-event-{number}",
        "type": "track",
        "event": name,
        "userId": user,
        "properties": {"order": number},
    }


def _identify(number: int, user: str) -> dict[str, Any]:
    return {
        "messageId": f"list-event-{number}",
        "type": "identify",
        "userId": user,
        "traits": {"plan": f"plan-{number}"},
    }


def _expect_column(rows: Locator, column: int, values: list[str]) -> None:
    expect(rows.locator(f"td:nth-child({column})")).to_have_text(values)


def _minute(moment: datetime) -> str:
    """A time as a datetime-local field holds it, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def test_segment_events_page_back_and_forth_and_stay_live_only_on_the_first_page(
    page: Page, studio: Studio
) -> None:
    for number in range(1, 6):
        assert studio.send_segment(_track(number, f"user-{number}")).status_code == 202
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/integrations/segment?limit=2")

    events = page.locator("#events")
    rows = page.locator("#events tbody tr")
    names = page.locator("#events tbody tr td:nth-child(3)")
    expect(names).to_have_text(["user-5", "user-4"])
    expect(events).to_have_attribute("hx-trigger", "every 2s")
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    page.get_by_role("link", name="Older →").click()
    expect(names).to_have_text(["user-3", "user-2"])
    assert "before=" in page.url
    assert "limit=2" in page.url
    # A page beyond the first is not refreshed: it does not jump when events arrive.
    expect(events).not_to_have_attribute("hx-trigger", "every 2s")
    page.get_by_role("link", name="Older →").click()
    expect(names).to_have_text(["user-1"])
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)

    page.get_by_role("link", name="← Newer").click()
    expect(names).to_have_text(["user-3", "user-2"])
    # An event arrives meanwhile: the page just newer is still the one after these, and the
    # one after it the first page, which is live again.
    assert studio.send_segment(_track(6, "user-6")).status_code == 202
    page.get_by_role("link", name="← Newer").click()
    expect(names).to_have_text(["user-5", "user-4"])
    expect(events).not_to_have_attribute("hx-trigger", "every 2s")
    page.get_by_role("link", name="← Newer").click()
    expect(events).to_have_attribute("hx-trigger", "every 2s")
    expect(names).to_have_text(["user-6", "user-5"])
    assert studio.send_segment(_track(7, "user-7")).status_code == 202
    expect(names).to_have_text(["user-7", "user-6"])
    expect(rows).to_have_count(2)


def test_segment_events_filter_by_type_name_user_and_time_in_the_url(
    page: Page, studio: Studio
) -> None:
    sent = [
        _track(1, "ada"),
        _identify(2, "ada"),
        _track(3, "bob", "Cart Viewed"),
        _track(4, "bob"),
        _identify(5, "cyd"),
    ]
    for event in sent:
        assert studio.send_segment(event).status_code == 202
    sign_in(page, studio)
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(5)

    page.get_by_label("Type").select_option("identify")
    page.get_by_role("button", name="Filter").click()
    _expect_column(rows, 3, ["cyd", "ada"])
    assert "type=identify" in page.url

    page.get_by_label("Type").select_option("")
    page.get_by_label("Name").fill("track/Order Shipped")
    page.get_by_label("User").fill("bob")
    page.get_by_role("button", name="Filter").click()
    _expect_column(rows, 2, ["track/Order Shipped"])
    _expect_column(rows, 3, ["bob"])
    screenshot(page, "segment-filtered")
    # The URL is the list: reloaded (or shared), it shows the same events and filters.
    page.reload()
    _expect_column(rows, 3, ["bob"])
    expect(page.get_by_label("User")).to_have_value("bob")
    expect(page.get_by_label("Name")).to_have_value("track/Order Shipped")

    # The live refresh keeps the filters: bob's next Order Shipped appears, his next
    # identify (sent first) does not.
    assert studio.send_segment(_identify(6, "bob")).status_code == 202
    assert studio.send_segment(_track(7, "bob")).status_code == 202
    expect(page.locator("#events tbody tr td:nth-child(2) a")).to_have_count(2)
    _expect_column(rows, 1, ["track", "track"])

    # Time, in UTC: all of them were received within the last hour, none after the next.
    now = datetime.now(UTC)
    page.goto(f"{studio.url}/studio/integrations/segment")
    page.get_by_label("From (UTC)").fill(_minute(now - timedelta(hours=1)))
    page.get_by_label("To (UTC)").fill(_minute(now + timedelta(hours=1)))
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(7)
    assert "from=" in page.url
    assert "to=" in page.url
    page.get_by_label("From (UTC)").fill(_minute(now + timedelta(hours=1)))
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#events")).to_contain_text("No event matches.")
    expect(page.get_by_text("No Segment events received yet.")).to_have_count(0)


def test_a_filter_value_studio_cannot_use_is_a_400_at_its_field(page: Page, studio: Studio) -> None:
    assert studio.send_segment(_track(1, "ada")).status_code == 202
    sign_in(page, studio)
    cases = [
        ("/studio/integrations/segment?from=yesterday", "from", "not a date and time"),
        ("/studio/integrations/segment?type=bogus", "type", "'bogus' is not one of"),
        ("/studio/integrations/segment?limit=0", "limit", "from 1 to 200"),
        ("/studio/integrations/segment?before=not-a-cursor", "before", "cursor is damaged"),
        ("/studio/messages?status=LOST", "status", "'LOST' is not one of"),
        ("/studio/messages?to=2026-13-40T00:00", "to", "not a date and time"),
        ("/studio/automations/runs?status=sleeping", "status", "'sleeping' is not one of"),
        ("/studio/automations/runs?from=soon", "from", "not a date and time"),
        ("/studio/notifications?after=%25%25", "after", "cursor is damaged"),
        ("/studio/profiles?limit=500", "limit", "from 1 to 200"),
    ]
    for path, field, message in cases:
        response = page.goto(f"{studio.url}{path}")
        assert response is not None
        assert response.status == 400, path
        expect(page.locator(f"#{field}-error")).to_contain_text(message)
    # The events list shows nothing rather than a list its filters do not describe.
    page.goto(f"{studio.url}/studio/integrations/segment?type=bogus")
    expect(page.locator("#events tbody tr")).to_have_count(0)
    expect(page.locator("#type")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "segment-filter-error")


def test_messages_page_and_filter_by_status_template_recipient_and_time(
    page: Page, studio: Studio
) -> None:
    template = {"content": {"email": {"subject": "Hi", "text": "Hello"}}}
    assert studio.api("PUT", "/notifications/welcome", json=template).status_code == 201
    sends = [
        {"to": {"user_id": "ada"}, "template": "welcome"},
        {"to": {"user_id": "bob"}, "content": {"title": "Hi", "body": "one"}},
        {"to": {"user_id": "ada"}, "content": {"title": "Hi", "body": "two"}},
        {"to": {"user_id": "bob"}, "template": "welcome"},
        {"to": {"user_id": "cyd"}, "template": "welcome"},
    ]
    ids = [
        studio.api("POST", "/send", json={"message": message}).json()["requestId"]
        for message in sends
    ]

    def all_unroutable() -> bool:
        found = studio.api("GET", "/messages", params={"status": "UNROUTABLE"}).json()
        return len(found["results"]) == len(ids)

    wait_for(all_unroutable, what="every message to end UNROUTABLE (no provider)")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/messages?limit=2")
    rows = page.locator("#messages tbody tr")
    first = rows.locator("td:nth-child(1)")
    expect(first).to_have_text([ids[4], ids[3]])
    page.get_by_role("link", name="Older →").click()
    expect(first).to_have_text([ids[2], ids[1]])
    page.get_by_role("link", name="Older →").click()
    expect(first).to_have_text([ids[0]])
    page.get_by_role("link", name="← Newer").click()
    expect(first).to_have_text([ids[2], ids[1]])
    page.get_by_role("link", name="← Newer").click()
    expect(first).to_have_text([ids[4], ids[3]])
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    # The form filters in place and puts its filters in the URL; the page size stays.
    page.get_by_label("Template").fill("welcome")
    page.get_by_label("Recipient").fill("bob")
    page.get_by_role("button", name="Filter").click()
    expect(first).to_have_text([ids[3]])
    page.wait_for_url("**notification=welcome**")
    assert "recipient=bob" in page.url
    assert "limit=2" in page.url
    page.reload()
    expect(first).to_have_text([ids[3]])
    expect(page.get_by_label("Recipient")).to_have_value("bob")

    page.goto(f"{studio.url}/studio/messages?status=unroutable&recipient=ada")
    expect(first).to_have_text([ids[2], ids[0]])
    expect(page.get_by_label("Status")).to_have_value("UNROUTABLE")
    page.goto(f"{studio.url}/studio/messages?status=SENT")
    expect(page.locator("#messages")).to_contain_text("No message matches.")

    now = datetime.now(UTC)
    page.goto(f"{studio.url}/studio/messages?to={_minute(now - timedelta(hours=1))}")
    expect(page.locator("#messages")).to_contain_text("No message matches.")
    page.goto(f"{studio.url}/studio/messages?from={_minute(now - timedelta(hours=1))}&limit=3")
    expect(rows).to_have_count(3)
    # The next page's link carries every filter, the page size and the cursor.
    href = page.get_by_role("link", name="Older →").get_attribute("href") or ""
    path, _, query = href.partition("?")
    assert path == "/studio/messages"
    assert set(parse_qs(query)) == {"from", "limit", "before"}
    assert parse_qs(query)["from"] == [_minute(now - timedelta(hours=1))]


SLOW = {"enabled": False, "steps": [{"action": "delay", "duration": "2 days"}]}


def test_runs_page_and_filter_by_automation_status_and_recipient(
    page: Page, studio: Studio
) -> None:
    assert studio.api("PUT", "/automations/slow", json=SLOW).status_code == 201
    assert studio.api("PUT", "/automations/later", json=SLOW).status_code == 201
    invoked = [("slow", "ada"), ("later", "bob"), ("slow", "bob"), ("slow", "ada")]
    run_ids = []
    for automation_id, recipient in invoked:
        response = studio.api(
            "POST", f"/automations/{automation_id}/invoke", json={"recipient": recipient}
        )
        assert response.status_code == 202
        run_ids.append(response.json()["runId"])

    def all_waiting() -> bool:
        statuses = [studio.api("GET", f"/automations/runs/{run}").json() for run in run_ids]
        return all(run["status"] == "WAITING" for run in statuses)

    wait_for(all_waiting, what="every run to wait on its delay")
    canceled = studio.api("POST", f"/automations/runs/{run_ids[0]}/cancel")
    assert canceled.status_code == 200

    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/runs?limit=3")
    first = page.locator("tbody tr td:nth-child(1)")
    expect(first).to_have_text(list(reversed(run_ids[1:])))
    page.get_by_role("link", name="Older →").click()
    expect(first).to_have_text([run_ids[0]])
    page.get_by_role("link", name="← Newer").click()
    expect(first).to_have_text(list(reversed(run_ids[1:])))

    page.get_by_label("Automation").fill("slow")
    page.get_by_label("Recipient").fill("ada")
    page.get_by_role("button", name="Filter").click()
    expect(first).to_have_text([run_ids[3], run_ids[0]])
    page.get_by_label("Status").select_option("CANCELED")
    page.get_by_role("button", name="Filter").click()
    expect(first).to_have_text([run_ids[0]])
    assert "status=CANCELED" in page.url
    assert "recipient=ada" in page.url
    page.reload()
    expect(first).to_have_text([run_ids[0]])
    expect(page.get_by_label("Automation")).to_have_value("slow")

    page.goto(f"{studio.url}/studio/automations/runs?recipient=bob")
    expect(first).to_have_text([run_ids[2], run_ids[1]])
    page.goto(f"{studio.url}/studio/automations/runs?automation_id=later&status=waiting")
    expect(first).to_have_text([run_ids[1]])


def test_templates_automations_and_profiles_page(page: Page, studio: Studio) -> None:
    template = {"content": {"email": {"subject": "Hi", "text": "Hello"}}}
    for name in ("alpha", "beta", "gamma"):
        assert studio.api("PUT", f"/notifications/{name}", json=template).status_code == 201
        assert studio.api("PUT", f"/automations/{name}", json=SLOW).status_code == 201
    for user in ("page-1", "page-2", "page-3"):
        answer = studio.api("POST", f"/profiles/{user}", json={"profile": {"name": user}})
        assert answer.status_code == 200
    sign_in(page, studio)

    lists = [
        ("/studio/notifications?limit=2", "tbody tr td:nth-child(1) code", ["alpha", "beta"]),
        ("/studio/automations?limit=2", "tbody tr td:nth-child(1) code", ["alpha", "beta"]),
        ("/studio/profiles?q=page-&limit=2", "tbody tr td:nth-child(1)", ["page-3", "page-2"]),
    ]
    rest = {"notifications": ["gamma"], "automations": ["gamma"], "profiles": ["page-1"]}
    for path, cells, first_page in lists:
        page.goto(f"{studio.url}{path}")
        column = page.locator(cells)
        expect(column).to_have_text(first_page)
        page.get_by_role("link", name="Next page →").click()
        expect(column).to_have_text(rest[path.split("/")[2].split("?")[0]])
        expect(page.get_by_role("link", name="Next page →")).to_have_count(0)
        page.reload()
        expect(column).to_have_text(rest[path.split("/")[2].split("?")[0]])
        page.get_by_role("link", name="← First page").click()
        expect(column).to_have_text(first_page)


def test_the_preview_picker_finds_an_event_by_message_id_or_user(
    page: Page, studio: Studio
) -> None:
    old = {**_track(1, "early-bird"), "properties": {"order": "the oldest"}}
    assert studio.send_segment(old).status_code == 202
    # More events than the picker's list holds: the first is no longer in it.
    for number in range(2, 23):
        assert studio.send_segment(_track(number, f"user-{number}")).status_code == 202
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/notifications/new")
    options = page.locator("#event option")
    expect(options).to_have_count(21)
    assert "early-bird" not in " ".join(options.all_inner_texts())

    page.locator("#email-subject").fill("Order {{ data.order }}")
    page.get_by_label("or another event").fill("list-event-1")
    expect(page.locator("#preview .preview-email-subject")).to_have_text("Order the oldest")
    page.get_by_label("or another event").fill("user-7")
    expect(page.locator("#preview .preview-email-subject")).to_have_text("Order 7")
    page.get_by_label("or another event").fill("")
    page.get_by_label("Preview with the data of").select_option("list-event-22")
    expect(page.locator("#preview .preview-email-subject")).to_have_text("Order 22")
