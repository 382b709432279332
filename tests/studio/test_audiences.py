"""Audiences in Studio: the editor counts a draft condition's matches as it is typed, reports
a condition that cannot be saved at its path, saves through the audience service, and the
audience's page shows its scan, members and history until it is deleted."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Page, expect

from tests.conftest import Keys, Serve, Worker
from tests.studio.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Studio,
    screenshot,
    sign_in,
)
from tidings.runtime import Runtime
from tidings.studio.auth import set_admin_password

PLANS = {"ada": "pro", "bob": "free", "cy": "free", "dee": "free"}
FREE = {"all": [{"trait": "plan", "equals": "free"}, {"not": {"event": "Upgraded"}}]}
PRO = {"trait": "plan", "equals": "pro"}
BAD = {
    "all": [{"trait": "plan", "equals": "free"}, {"event": "Viewed Pricing", "within": "7 parsecs"}]
}


def _profiles(studio: Studio) -> None:
    for user_id, plan in PLANS.items():
        answer = studio.api("POST", f"/profiles/{user_id}", json={"profile": {"plan": plan}})
        assert answer.status_code == 200, answer.text


def _type_condition(page: Page, condition: dict[str, Any]) -> None:
    page.get_by_label("Condition (JSON)").fill(json.dumps(condition, indent=2))


def test_create_an_audience_with_its_live_count_then_edit_and_delete_it(
    page: Page, studio: Studio
) -> None:
    _profiles(studio)
    sign_in(page, studio)
    page.get_by_role("navigation", name="Studio").get_by_role("link", name="Audiences").click()
    expect(page.get_by_text("No audiences yet.")).to_be_visible()
    page.get_by_role("link", name="New audience").click()

    # The example condition is there, and counted at once: nobody viewed pricing yet.
    condition = page.get_by_label("Condition (JSON)")
    assert json.loads(condition.input_value())["all"][1]["event"] == "Viewed Pricing"
    count = page.locator("#count")
    expect(count).to_have_attribute("aria-live", "polite")
    expect(count).to_have_text(re.compile(r"^Matches 0 of the 4 users evaluated\."))

    page.get_by_label("Id").fill("free-users")
    page.get_by_label("Name").fill("Free users")
    page.get_by_label("Description (optional)").fill("Everyone on the free plan")
    _type_condition(page, FREE)
    expect(count).to_contain_text("Matches 3 of the 4 users evaluated.")
    expect(count.get_by_role("link")).to_have_text(["bob", "cy", "dee"])
    screenshot(page, "audience-editor")
    expect(count.get_by_role("link", name="bob")).to_have_attribute("href", "/studio/profiles/bob")
    _type_condition(page, PRO)
    expect(count).to_contain_text("Matches 1 of the 4 users evaluated.")
    expect(count.get_by_role("link")).to_have_text(["ada"])

    # A condition that cannot be saved: the live count says why, at its path.
    _type_condition(page, BAD)
    expect(count).to_contain_text('condition.all[1].within: "7 parsecs" is not a duration')
    expect(count.locator("#count-result")).to_have_count(0)
    page.get_by_label("Condition (JSON)").fill('{"trait": "plan", "equals": ')
    expect(count).to_contain_text("condition: not valid JSON")

    # Saving it is refused at the field, with what was typed kept.
    _type_condition(page, BAD)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#condition-error")).to_contain_text(
        'condition.all[1].within: "7 parsecs" is not a duration'
    )
    expect(condition).to_have_attribute("aria-invalid", "true")
    assert json.loads(condition.input_value()) == BAD
    expect(page.get_by_label("Id")).to_have_value("free-users")
    expect(page.get_by_label("Description (optional)")).to_have_value("Everyone on the free plan")
    assert studio.api("GET", "/audiences/free-users").status_code == 404

    _type_condition(page, FREE)
    expect(count).to_contain_text("Matches 3 of the 4 users evaluated.")
    page.get_by_role("button", name="Save").click()

    # The audience's page: its members once the scan has reached them.
    expect(page).to_have_url(f"{studio.url}/studio/audiences/free-users?flash=created")
    expect(page.locator(".flash")).to_have_text("Audience created: its members are being computed.")
    expect(page.get_by_role("heading", name="Free users")).to_be_visible()
    expect(page.get_by_text("Everyone on the free plan")).to_be_visible()
    assert json.loads(page.locator("#audience-condition").inner_text()) == FREE
    expect(page.locator("#scan-state")).to_have_text("ready")
    expect(page.locator("#member-count")).to_have_text("3")
    members = page.locator("#members tbody tr td:first-child")
    expect(members).to_have_text(["bob", "cy", "dee"])
    expect(page.locator("#members").get_by_role("link", name="cy")).to_have_attribute(
        "href", "/studio/profiles/cy"
    )
    saved = studio.api("GET", "/audiences/free-users").json()
    assert (saved["name"], saved["description"], saved["condition"]) == (
        "Free users",
        "Everyone on the free plan",
        FREE,
    )

    # The list shows it with its members and scan.
    page.get_by_role("link", name="← Audiences").click()
    row = page.locator("#audiences tbody tr")
    expect(row.locator("td")).to_have_text(["free-users", "Free users", "3", "ready"])

    # Edit: a new condition is a new version, and the members follow the scan.
    row.get_by_role("link", name="free-users").click()
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Id")).to_have_attribute("readonly", "")
    assert json.loads(condition.input_value()) == FREE
    expect(count).to_contain_text("Matches 3 of the 4 users evaluated.")
    page.get_by_label("Name").fill("Pro users")
    _type_condition(page, PRO)
    expect(count).to_contain_text("Matches 1 of the 4 users evaluated.")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{studio.url}/studio/audiences/free-users?flash=saved")
    expect(page.locator("#audience-version")).to_have_text("2")
    expect(page.locator("#scan-state")).to_have_text("ready")
    expect(members).to_have_text(["ada"])
    expect(page.locator("#member-count")).to_have_text("1")

    # History: every stay, the three who left and the one who entered.
    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(f"{studio.url}/studio/audiences/free-users?show=history")
    stays = page.locator("#history tbody tr")
    expect(stays.locator("td:first-child")).to_have_text(["bob", "cy", "dee", "ada"])
    expect(stays.locator("td:nth-child(3)")).to_have_text(
        [re.compile(r"UTC$")] * 3 + ["still a member"]
    )

    # Delete: it asks first.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete this audience").click()
    assert "Deletes the audience free-users" in questions[0]
    assert studio.api("GET", "/audiences/free-users").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this audience").click()
    expect(page).to_have_url(f"{studio.url}/studio/audiences?flash=deleted")
    expect(page.get_by_text("No audiences yet.")).to_be_visible()
    assert studio.api("GET", "/audiences/free-users").status_code == 404


def test_a_courier_filter_is_shown_and_saving_keeps_the_condition_it_means(
    page: Page, studio: Studio
) -> None:
    _profiles(studio)
    courier = {
        "filter": {
            "operator": "AND",
            "filters": [{"operator": "EQ", "path": "plan", "value": "pro"}],
        }
    }
    answer = studio.api("PUT", "/audiences/courier-pro", json={"name": "Pro", **courier})
    assert answer.status_code == 200, answer.text
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/audiences/courier-pro/edit")

    shown = json.loads(page.locator("#courier-filter").inner_text())
    assert shown == courier["filter"]
    condition = json.loads(page.get_by_label("Condition (JSON)").input_value())
    assert condition == answer.json()["audience"]["condition"]
    expect(page.locator("#count")).to_contain_text("Matches 1 of the 4 users evaluated.")

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{studio.url}/studio/audiences/courier-pro?flash=saved")
    expect(page.locator("#courier-filter")).to_have_count(0)
    saved = studio.api("GET", "/audiences/courier-pro").json()
    assert (saved["filter"], saved["condition"], saved["version"]) == (None, condition, 1)


def test_the_list_pages_and_a_new_audience_needs_a_free_id(page: Page, studio: Studio) -> None:
    for audience_id in ("first", "second"):
        body = {"name": audience_id.title(), "condition": PRO}
        assert studio.api("PUT", f"/audiences/{audience_id}", json=body).status_code == 200
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/audiences?limit=1")
    ids = page.locator("#audiences tbody tr td:first-child")
    expect(ids).to_have_text(["first"])
    page.get_by_role("link", name="Next page →").click()
    expect(ids).to_have_text(["second"])
    expect(page.get_by_role("link", name="Next page →")).to_have_count(0)

    # Every field of the audience is in its form: an unchanged Save changes nothing.
    before = studio.api("GET", "/audiences/first").json()
    page.goto(f"{studio.url}/studio/audiences/first/edit")
    expect(page.locator("#count")).to_contain_text("Matches 0 of the 0 users evaluated.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_have_text("Nothing changed: the audience is as it was.")
    assert studio.api("GET", "/audiences/first").json() == before

    page.goto(f"{studio.url}/studio/audiences/_new")
    page.get_by_label("Id").fill("second")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#audience_id-error")).to_have_text(
        "An audience 'second' exists already: open it to edit it."
    )
    expect(page.get_by_label("Id")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Id").fill("no spaces")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#audience_id-error")).to_contain_text("is not an audience id")
    assert studio.api("GET", "/audiences/second").json()["name"] == "Second"


def test_the_page_follows_the_scan_until_it_is_ready(
    page: Page, serve: Serve, worker: Worker, runtime: Runtime, keys: Keys
) -> None:
    # No consumer in the server: the scan waits for the worker started below.
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    with runtime.database.write() as (session, _):
        set_admin_password(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    studio = Studio(server, keys.test, server.log_path)
    _profiles(studio)
    body = {"name": "Free users", "condition": FREE}
    assert studio.api("PUT", "/audiences/free-users", json=body).status_code == 200
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/audiences/free-users")

    live = page.locator("#audience-live")
    expect(page.locator("#scan-state")).to_have_text("scanning: starting")
    expect(live).to_have_attribute("hx-trigger", "every 2s")
    expect(page.get_by_text("No members.")).to_be_visible()
    page.get_by_role("link", name="← Audiences").click()
    expect(page.locator("#audiences tbody tr td")).to_have_text(
        ["free-users", "Free users", "0", "scanning: starting"]
    )
    page.go_back()

    worker()
    # Without a reload: the page refreshes itself until the scan is ready, then stops.
    expect(page.locator("#scan-state")).to_have_text("ready")
    expect(page.locator("#members tbody tr td:first-child")).to_have_text(["bob", "cy", "dee"])
    expect(page.locator("#member-count")).to_have_text("3")
    expect(live).not_to_have_attribute("hx-trigger", "every 2s")


# No "/": it is also a user id, in the profile's URL.
HOSTILE = "mallory<img src=x onerror=\"window.__xss = 'img'\"><b>bold"


def test_names_and_user_ids_are_shown_as_text(page: Page, studio: Studio) -> None:
    user_path = quote(HOSTILE, safe="")
    answer = studio.api("POST", f"/profiles/{user_path}", json={"profile": {"plan": "free"}})
    assert answer.status_code == 200, answer.text
    body = {"name": HOSTILE, "description": HOSTILE, "condition": FREE}
    assert studio.api("PUT", "/audiences/hostile", json=body).status_code == 200
    sign_in(page, studio)

    for path in (
        "/studio/audiences",
        "/studio/audiences/hostile",
        "/studio/audiences/hostile/edit",
    ):
        page.goto(f"{studio.url}{path}")
        expect(page.get_by_text(HOSTILE).first).to_be_visible()
        if path.endswith("/edit"):
            expect(page.locator("#count").get_by_role("link")).to_have_text([HOSTILE])
        else:
            expect(page.locator("#scan-state, #audiences td").last).to_have_text("ready")
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("script:not([src])").count() == 0, path
    expect(page.get_by_label("Name")).to_have_value(HOSTILE)
