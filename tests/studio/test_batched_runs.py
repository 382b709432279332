"""Studio's runs filter lists the runs a batch step took into another run's batch."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import wait_for
from tests.studio.conftest import Studio, sign_in

DIGEST = {"enabled": False, "steps": [{"action": "batch", "window": "1 day"}]}


def test_the_runs_filter_lists_batched_runs(page: Page, studio: Studio) -> None:
    assert studio.api("PUT", "/automations/digest", json=DIGEST).status_code == 201
    run_ids = []
    for text in ("first", "second"):
        body = {"recipient": "ada", "data": {"text": text}}
        response = studio.api("POST", "/automations/digest/invoke", json=body)
        assert response.status_code == 202
        run_ids.append(response.json()["runId"])
        wait_for(
            lambda run_id=run_ids[-1]: (
                studio.api("GET", f"/automations/runs/{run_id}").json()["status"]
                in ("WAITING", "BATCHED")
            ),
            what=f"the {text} run at the batch step",
        )
    opener, batched = run_ids
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/automations/runs")
    page.get_by_label("Status").select_option("BATCHED")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr td:nth-child(1)")).to_have_text([batched])
    expect(page.locator("tbody tr .status")).to_have_text(["BATCHED"])
    assert "status=BATCHED" in page.url
    # The batched run's page shows the opener it joined.
    page.goto(f"{studio.url}/studio/automations/runs/{batched}")
    expect(page.get_by_text(f"batched into run {opener}").first).to_be_visible()
