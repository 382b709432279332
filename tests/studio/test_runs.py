"""An event's trace: the run it started, the run's step timeline, its message, cancelation."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from tests.conftest import wait_for
from tests.studio.conftest import ADMIN_EMAIL, Studio, screenshot, sign_in
from tidings.automation.repository import RunRepository
from tidings.models import AutomationRun
from tidings.runtime import Runtime
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.service import default_workspace

SHIPPED = {
    "name": "Shipping notice",
    "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
    "steps": [
        {
            "action": "send",
            "recipient": {"$ref": "event.userId"},
            "content": {"title": "Shipped", "body": "Order {{ data.order_id }} is on its way."},
        },
        {"action": "delay", "duration": "1 hour"},
        {"action": "send", "recipient": {"$ref": "event.userId"}, "content": {"title": "Hi"}},
    ],
}
TRACK = {
    "messageId": "order-shipped-1",
    "type": "track",
    "event": "Order Shipped",
    "properties": {"order_id": "A-17"},
    "userId": "buyer-1",
}


def _test_environment_id(session: Session) -> str:
    workspace = default_workspace(session)
    environment = WorkspaceRepository(session).environment_by_name(workspace.id, "test")
    assert environment is not None
    return environment.id


def _latest_run(runtime: Runtime) -> AutomationRun | None:
    """The newest run, read from the database (the source of truth)."""
    with runtime.database.read() as session:
        runs = RunRepository(session).page(_test_environment_id(session), None, 1)
    return runs[0] if runs else None


def test_event_shows_its_run_whose_timeline_can_be_canceled(
    page: Page, studio: Studio, runtime: Runtime
) -> None:
    assert studio.api("PUT", "/automations/shipped", json=SHIPPED).status_code == 201
    assert studio.send_segment(TRACK).status_code == 202

    def waiting() -> str | None:
        run = _latest_run(runtime)
        return run.run_id if run is not None and run.status == "WAITING" else None

    run_id = wait_for(waiting, what="a run waiting on its delay")
    sign_in(page, studio)
    page.goto(f"{studio.url}/studio/events/order-shipped-1")

    started = page.locator("section", has_text="Automations started")
    expect(started.get_by_role("link", name="shipped")).to_be_visible()
    expect(started.locator(".status")).to_have_text("WAITING")
    sent = page.locator("section[aria-labelledby=messages-title]")
    expect(sent.locator(".card")).to_have_count(1)
    screenshot(page, "event-trace")

    started.get_by_role("link", name="shipped").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(run_id)
    timeline = page.locator(".timeline li")
    expect(timeline).to_have_count(2)
    expect(timeline.nth(0)).to_contain_text("1. send")
    expect(timeline.nth(1)).to_contain_text("2. delay")
    expect(timeline.nth(1).locator(".status")).to_have_text("WAITING")
    screenshot(page, "run")

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel this run").click()
    expect(page.locator("h1 .status")).to_have_text("CANCELED")
    assert questions == [
        f"Cancel run {run_id}? Its remaining steps will not run; what it already sent stays "
        "sent. This cannot be undone."
    ]
    # Recorded as a cancel made in Studio, by whom.
    expect(page.locator("p.error")).to_have_text(f"canceled in Studio by {ADMIN_EMAIL}")
    expect(page.get_by_role("button", name="Cancel this run")).to_have_count(0)
    run = _latest_run(runtime)
    assert run is not None
    assert run.run_id == run_id
    assert run.status == "CANCELED"
