"""Studio's runs filter lists the runs waiting for an event, and their status."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, sign_in

WAITING = {
    "enabled": False,
    "steps": [
        {
            "action": "wait-for-event",
            "event": "track/Order Completed",
            "match": {"cart_id": "{{ data.cart_id }}"},
            "timeout": "1 day",
        }
    ],
}
DELAYED = {"enabled": False, "steps": [{"action": "delay", "duration": "2 days"}]}


def test_the_runs_filter_lists_runs_waiting_for_an_event(page: Page, studio: Studio) -> None:
    assert studio.api("PUT", "/automations/cart", json=WAITING).status_code == 201
    assert studio.api("PUT", "/automations/slow", json=DELAYED).status_code == 201
    run_ids = {}
    for automation_id in ("cart", "slow"):
        body = {"recipient": "ada", "data": {"cart_id": "A"}}
        response = studio.api("POST", f"/automations/{automation_id}/invoke", json=body)
        assert response.status_code == 202
        run_ids[automation_id] = response.json()["runId"]

    def both_paused() -> bool:
        statuses = {
            studio.api("GET", f"/automations/runs/{run_id}").json()["status"]
            for run_id in run_ids.values()
        }
        return statuses == {"WAITING", "WAITING_FOR_EVENT"}

    wait_for(both_paused, what="one run waiting for an event, one on a delay")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/runs")
    page.get_by_label("Status").select_option("WAITING_FOR_EVENT")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr td:nth-child(1)")).to_have_text([run_ids["cart"]])
    expect(page.locator("tbody tr .status")).to_have_text(["WAITING_FOR_EVENT"])
    assert "status=WAITING_FOR_EVENT" in page.url
    page.goto(f"{studio.url}/studio/automations/runs/{run_ids['cart']}")
    expect(page.get_by_role("button", name="Cancel this run")).to_be_visible()
