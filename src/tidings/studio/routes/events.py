"""Integrations → Segment, the event detail, and event names."""

from __future__ import annotations

from operator import attrgetter
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from tidings.dependencies import KeyCipherDep, OutboundDep
from tidings.errors import AppError, NotFound
from tidings.ingest.validation import SEGMENT_TYPES
from tidings.studio import service, trace
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Admin, Page, see_other
from tidings.studio.listing import ListQuery, empty
from tidings.studio.templating import render
from tidings.workspace.service import list_keys

router = APIRouter()

PAGE_SIZE = 50
NAMES_PAGE_SIZE = 100
SEGMENT_PAGE = f"{PREFIX}/integrations/segment"


def _events(page: Page, session: Session) -> dict[str, Any]:
    """The events list of the query string's page and filters, for segment.html and
    _events.html: `listing`, `filters`, `errors` and `live` (the refresh URL of a first page,
    None on another page)."""
    query = ListQuery(page.request, SEGMENT_PAGE, PAGE_SIZE)
    where = service.EventFilter(
        event_type=query.choice("type", SEGMENT_TYPES, "Type"),
        name=query.text("name"),
        user_id=query.text("user"),
        received_from=query.time("from", "From"),
        received_to=query.time("to", "To"),
    )
    listing = query.newest_first(
        lambda before_id, after_id, limit: service.events_page(
            session, page.scope, where, before_id=before_id, after_id=after_id, limit=limit
        )
    )
    valid = not query.errors
    return {
        "listing": listing if valid else empty(),
        "filters": query.values,
        "filtered": query.filtered,
        "errors": query.errors,
        "types": SEGMENT_TYPES,
        "live": query.url_at(f"{SEGMENT_PAGE}/events") if valid and listing.first else None,
    }


@router.get("/integrations/segment")
def segment_page(page: Page, key_cipher: KeyCipherDep) -> Response:
    with page.database.read() as session:
        keys = [key for key in list_keys(session, key_cipher) if key.revoked_at is None and key.key]
        events = _events(page, session)
    endpoint = page.absolute_url("/inbound/segment")
    return render(
        page.request,
        "segment.html",
        400 if events["errors"] else 200,
        section="segment",
        keys=keys,
        endpoint=endpoint,
        **events,
    )


@router.get("/integrations/segment/events")
def segment_events(page: Page) -> Response:
    """The live list: htmx polls this fragment every two seconds, with the page's filters."""
    with page.database.read() as session:
        events = _events(page, session)
    return render(page.request, "_events.html", 400 if events["errors"] else 200, **events)


@router.get("/events/{message_id:path}")
def event_detail(message_id: str, page: Page) -> Response:
    with page.database.read() as session:
        event = service.event_of(session, page.scope, message_id)
        if event is None:
            raise NotFound(
                f"No Segment event {message_id!r} in the {page.scope.environment} environment.",
                code="event_not_found",
            )
        found = trace.of_event(session, page.scope, event)
    return render(page.request, "event.html", section="segment", event=event, trace=found)


def _event_names_page(page: Page, status_code: int = 200, error: str | None = None) -> Response:
    """Event names, those with the newest events first, a page at a time."""
    query = ListQuery(page.request, f"{PREFIX}/event-names", NAMES_PAGE_SIZE)
    with page.database.read() as session:
        listing = query.newest_first(
            lambda before_id, after_id, limit: service.event_names_page(
                session, page.scope, before_id=before_id, after_id=after_id, limit=limit
            ),
            key=attrgetter("newest_id"),
        )
        automations = [
            automation.automation_id for automation, _ in service.automations(session, page.scope)
        ]
    if query.errors:
        return query.render(
            "event_names.html", listing, section="names", automations=[], error=error
        )
    return render(
        page.request,
        "event_names.html",
        status_code,
        section="names",
        listing=listing,
        filters=query.values,
        errors=query.errors,
        automations=automations,
        error=error,
    )


@router.get("/event-names")
def event_names(page: Page) -> Response:
    return _event_names_page(page)


@router.post("/event-names/link")
def link_automation(page: Page, form: CheckedForm, outbound: OutboundDep) -> Response:
    """The "+" button: add this event name to an automation's triggers."""
    name, automation_id = form_text(form, "event").strip(), form_text(form, "automation_id").strip()
    try:
        with page.database.write() as (session, _):
            service.link_trigger(session, page.scope, automation_id, name, outbound)
    except AppError as exc:
        return _event_names_page(page, exc.status_code, f"{automation_id}: {exc.message}")
    return see_other(f"{PREFIX}/event-names")


@router.post("/event-names/create-automation")
def create_automation(admin: Admin, form: CheckedForm) -> Response:
    """ "Create automation": open a new automation prefilled with the trigger and a send."""
    return see_other(
        f"{PREFIX}/automations/new?trigger={quote(form_text(form, 'event').strip(), safe='')}"
    )
