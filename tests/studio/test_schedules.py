"""The automation editor's schedule triggers: add one (cron, zone, target, data), see its
next tick, errors at their field, edit and remove it, next to the event triggers."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.studio.conftest import Studio, sign_in
from tidings.automation import schedules
from tidings.models import AutomationSchedule
from tidings.runtime import Runtime

STEPS = [{"action": "update-profile", "profile": {"ticked": True}, "merge": "overwrite"}]


def test_add_edit_and_remove_a_schedule_in_the_editor(page: Page, studio: Studio) -> None:
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/new?view=json")
    page.locator("#id").fill("weekly-digest")
    page.get_by_label("Enabled").check()
    page.locator("#triggers").fill("identify")
    page.locator("#steps").fill('[{"action": "update-profile", "profile": {"ticked": true}}]')
    page.locator("#schedule-0-cron").fill("0 9 * * FUN")
    page.locator("#schedule-0-timezone").fill("Europe/Paris")
    page.locator("#schedule-0-target").select_option("list_id")
    page.locator("#schedule-0-target_id").fill("digest")
    page.locator("#schedule-0-data").fill('{"edition": ')
    page.get_by_role("button", name="Save", exact=True).click()

    # Data that is no JSON is shown at its field, before anything is saved.
    expect(page.locator("#schedule-0-data-error")).to_contain_text("data: not valid JSON")
    expect(page.locator("#schedule-0-data")).to_have_attribute("aria-invalid", "true")
    page.locator("#schedule-0-data").fill('{"edition": "weekly"}')
    page.get_by_role("button", name="Save", exact=True).click()
    # The cron, by the API's validation, at its field (the event trigger comes first).
    expect(page.locator("#schedule-0-cron-error")).to_contain_text(
        'triggers[1].cron: "0 9 * * FUN" is not a cron expression (bad day-of-week)'
    )
    expect(page.locator("#schedule-0-cron")).to_have_attribute("aria-invalid", "true")
    assert studio.api("GET", "/automations/weekly-digest").status_code == 404

    page.locator("#schedule-0-cron").fill("0 9 * * MON")
    page.locator("#schedule-0-timezone").fill("Europe/Pariss")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#schedule-0-timezone-error")).to_contain_text(
        '"Europe/Pariss" is not an IANA time zone'
    )
    page.locator("#schedule-0-timezone").fill("Europe/Paris")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    saved = studio.api("GET", "/automations/weekly-digest").json()
    assert saved["triggers"] == [
        {"source": "segment", "event": "identify"},
        {
            "source": "schedule",
            "cron": "0 9 * * MON",
            "timezone": "Europe/Paris",
            "list_id": "digest",
            "data": {"edition": "weekly"},
        },
    ]
    # The saved schedule shows its next tick, in its zone and in UTC; an empty row adds one.
    expect(page.locator("#schedule-0-next")).to_contain_text("Next tick: Mon ")
    expect(page.locator("#schedule-0-next")).to_contain_text("09:00 Europe/Paris (")
    expect(page.locator("#triggers")).to_have_value("identify")
    expect(page.locator("#schedule-1-cron")).to_have_value("")

    # A second schedule, for one recipient, without a zone (UTC).
    page.locator("#schedule-1-cron").fill("30 17 * * FRI")
    page.locator("#schedule-1-target").select_option("recipient")
    page.locator("#schedule-1-target_id").fill("u1")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 2.")).to_be_visible()
    expect(page.locator("#schedule-1-next")).to_contain_text("17:30 UTC")
    triggers = studio.api("GET", "/automations/weekly-digest").json()["triggers"]
    assert triggers[2] == {
        "source": "schedule",
        "cron": "30 17 * * FRI",
        "timezone": "UTC",
        "recipient": "u1",
        "data": {},
    }

    # The schedules stay through a switch of the steps' view.
    # (The saved page shows the steps as forms: to JSON, which the swap alone shows.)
    page.get_by_role("button", name="JSON", exact=True).click()
    expect(page.locator("#steps")).to_be_visible()
    expect(page.locator("#schedule-1-target")).to_have_value("recipient")
    expect(page.locator("#schedule-0-data")).to_have_value('{"edition": "weekly"}')

    # Emptied, the first schedule is removed; the other stays.
    page.locator("#schedule-0-cron").fill("")
    page.locator("#schedule-0-target_id").fill("")
    page.locator("#schedule-0-data").fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 3.")).to_be_visible()
    triggers = studio.api("GET", "/automations/weekly-digest").json()["triggers"]
    assert [trigger["source"] for trigger in triggers] == ["segment", "schedule"]
    assert triggers[1]["cron"] == "30 17 * * FRI"

    # Disabling from the list keeps the schedule in the definition (its ticks stop).
    page.goto(f"{studio.url}/studio/automations")
    row = page.locator("tr", has_text="weekly-digest")
    expect(row.get_by_text("schedule 30 17 * * FRI UTC")).to_be_visible()
    row.get_by_role("button", name="Disable").click()
    expect(page.locator("tr", has_text="weekly-digest").locator(".status")).to_have_text("disabled")
    disabled = studio.api("GET", "/automations/weekly-digest").json()
    assert disabled["enabled"] is False
    assert disabled["triggers"] == triggers

    # A schedule for every member of an audience.
    page.goto(f"{studio.url}/studio/automations/weekly-digest")
    page.locator("#schedule-1-cron").fill("0 8 1 * *")
    page.locator("#schedule-1-target").select_option("audience_id")
    page.locator("#schedule-1-target_id").fill("pricing-hot")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version")).to_be_visible()
    expect(page.locator("#schedule-1-target")).to_have_value("audience_id")
    triggers = studio.api("GET", "/automations/weekly-digest").json()["triggers"]
    assert triggers[2] == {
        "source": "schedule",
        "cron": "0 8 1 * *",
        "timezone": "UTC",
        "audience_id": "pricing-hot",
        "data": {},
    }


def test_a_scheduled_run_shows_its_schedule_in_the_runs(
    page: Page, studio: Studio, runtime: Runtime
) -> None:
    trigger = {"source": "schedule", "cron": "0 9 * * MON", "recipient": "u1"}
    body = {"triggers": [trigger], "steps": STEPS}
    assert studio.api("PUT", "/automations/weekly", json=body).status_code == 201
    with runtime.database.read() as session:
        tick = session.scalars(select(AutomationSchedule.next_fire_at)).one()
    assert schedules.fire_due(runtime.database, tick) == 1
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/runs")
    row = page.locator("tbody tr", has_text="weekly")
    expect(row.get_by_text("schedule/0 9 * * MON")).to_be_visible()
    row.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/studio/automations/runs/run_"))
    expect(page.locator("code", has_text="schedule/0 9 * * MON")).to_be_visible()
