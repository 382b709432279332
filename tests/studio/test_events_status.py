"""The Segment events list says what the event page says: a processed event whose messages
were not sent shows "N messages not sent" in the failed colour, read in the page's query."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select

from tests.conftest import wait_for
from tests.studio.conftest import Studio, sign_in
from tidings.models import Environment
from tidings.runtime import Runtime
from tidings.studio import service
from tidings.workspace.service import Scope

RED = "rgb(179, 38, 30)"
GREEN = "rgb(28, 124, 60)"
# Two sends to a user without an email, with no email provider: both end UNROUTABLE.
TWICE = {
    "name": "Welcome twice",
    "triggers": [{"source": "segment", "event": "identify"}],
    "steps": [
        {"action": "send", "template": "welcome"},
        {"action": "send", "template": "welcome"},
    ],
}


def _unroutable(studio: Studio) -> int:
    found = studio.api("GET", "/messages").json()["results"]
    return sum(message["status"] == "UNROUTABLE" for message in found)


def _processed(studio: Studio, message_id: str) -> bool:
    answer = studio.api("GET", f"/integrations/segment/events/{message_id}")
    return answer.status_code == 200 and answer.json()["status"] == "processed"


def test_the_events_list_shows_the_messages_not_sent(
    page: Page, studio: Studio, runtime: Runtime
) -> None:
    template = {"content": {"email": {"subject": "Welcome", "text": "Hello"}}}
    assert studio.api("PUT", "/notifications/welcome", json=template).status_code == 201
    assert studio.api("PUT", "/automations/welcome", json=TWICE).status_code == 201
    identify = {"messageId": "identify-nomail", "type": "identify", "userId": "nomail"}
    assert studio.send_segment({**identify, "traits": {"name": "No Mail"}}).status_code == 202
    track = {"messageId": "track-plain", "type": "track", "event": "Viewed", "userId": "nomail"}
    assert studio.send_segment(track).status_code == 202
    wait_for(lambda: _unroutable(studio) == 2, what="both messages UNROUTABLE")
    wait_for(lambda: _processed(studio, "track-plain"), what="the track event processed")
    sign_in(page, studio)

    rows = page.locator("#events tbody tr")
    failed = rows.filter(has_text="identify")
    expect(failed.locator(".status").first).to_have_text("processed")
    expect(failed.locator(".outcome")).to_have_text("2 messages not sent")
    expect(failed.locator(".outcome")).to_have_css("color", RED)
    plain = rows.filter(has_text="Viewed")
    expect(plain.locator(".status")).to_have_text("processed")
    expect(plain.locator(".status")).to_have_css("color", GREEN)
    expect(plain.locator(".outcome")).to_have_count(0)
    # The live refresh keeps it.
    page.wait_for_event("response", lambda r: "/integrations/segment/events" in r.url)
    expect(failed.locator(".outcome")).to_have_text("2 messages not sent")

    # The counts come with the page's one query, not a query per event.
    rows, statements = _listed_with_statements(runtime)
    assert [(row.event.message_id, row.not_sent) for row in rows] == [
        ("track-plain", 0),
        ("identify-nomail", 2),
    ]
    assert len(statements) == 1, statements

    # The event page says the same.
    failed.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1).locator(".outcome")).to_have_text(
        "2 messages not sent"
    )


def _listed_with_statements(runtime: Runtime) -> tuple[list[service.ListedEvent], list[str]]:
    """The first page of the events list as Studio reads it, and the SQL it ran."""
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    with runtime.database.read() as session:
        environment = session.scalars(select(Environment).where(Environment.name == "test")).one()
        scope = Scope(environment.workspace_id, environment.id, "test", "studio")
        engine = session.get_bind()
        sqlalchemy_event.listen(engine, "before_cursor_execute", count)
        try:
            rows = service.events_page(
                session, scope, service.EventFilter(), before_id=None, after_id=None, limit=50
            )
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    return rows, statements
