"""Integrations → Segment, the event detail, and event names."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tidings.db import Database
from tidings.dependencies import DatabaseDep, KeyCipherDep, OutboundDep
from tidings.errors import AppError, NotFound
from tidings.studio import service, trace
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Admin
from tidings.studio.templating import render
from tidings.workspace.service import list_keys

router = APIRouter()

LIVE_LIMIT = 50


@router.get("/integrations/segment")
def segment_page(
    request: Request, admin: Admin, database: DatabaseDep, key_cipher: KeyCipherDep
) -> Response:
    with database.read() as session:
        keys = [key for key in list_keys(session, key_cipher) if key.revoked_at is None and key.key]
        events = service.recent_events(session, admin.scope, LIVE_LIMIT)
    endpoint = f"{request.url.scheme}://{request.url.netloc}/inbound/segment"
    return render(
        request,
        "segment.html",
        section="segment",
        keys=keys,
        events=events,
        endpoint=endpoint,
    )


@router.get("/integrations/segment/events")
def segment_events(request: Request, admin: Admin, database: DatabaseDep) -> Response:
    """The live list: htmx polls this fragment every two seconds."""
    with database.read() as session:
        events = service.recent_events(session, admin.scope, LIVE_LIMIT)
    return render(request, "_events.html", events=events)


@router.get("/events/{message_id:path}")
def event_detail(
    message_id: str, request: Request, admin: Admin, database: DatabaseDep
) -> Response:
    with database.read() as session:
        event = service.event_of(session, admin.scope, message_id)
        if event is None:
            raise NotFound(
                f"No Segment event {message_id!r} in the {admin.scope.environment} environment.",
                code="event_not_found",
            )
        found = trace.of_event(session, admin.scope, event)
    return render(request, "event.html", section="segment", event=event, trace=found)


def _event_names_page(
    request: Request,
    admin: Admin,
    database: Database,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    with database.read() as session:
        names = service.event_names(session, admin.scope)
        automations = [
            automation.automation_id for automation, _ in service.automations(session, admin.scope)
        ]
    return render(
        request,
        "event_names.html",
        status_code,
        section="names",
        names=names,
        automations=automations,
        error=error,
    )


@router.get("/event-names")
def event_names(request: Request, admin: Admin, database: DatabaseDep) -> Response:
    return _event_names_page(request, admin, database)


@router.post("/event-names/link")
def link_automation(
    request: Request, admin: Admin, form: CheckedForm, outbound: OutboundDep, database: DatabaseDep
) -> Response:
    """The "+" button: add this event name to an automation's triggers."""
    name, automation_id = form_text(form, "event").strip(), form_text(form, "automation_id").strip()
    try:
        with database.write() as (session, _):
            service.link_trigger(session, admin.scope, automation_id, name, outbound)
    except AppError as exc:
        return _event_names_page(
            request, admin, database, exc.status_code, f"{automation_id}: {exc.message}"
        )
    return RedirectResponse(f"{PREFIX}/event-names", status_code=303)


@router.post("/event-names/create-automation")
def create_automation(admin: Admin, form: CheckedForm) -> Response:
    """ "Create automation": open a new automation prefilled with the trigger and a send."""
    return RedirectResponse(
        f"{PREFIX}/automations/new?trigger={quote(form_text(form, 'event').strip(), safe='')}",
        status_code=303,
    )
