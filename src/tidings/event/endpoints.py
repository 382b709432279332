from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from tidings.automation import service as automation_service
from tidings.automation.repository import RunRepository
from tidings.dependencies import Caller, ReadSession
from tidings.errors import NotFound, found
from tidings.event.schemas import (
    EventDetail,
    EventName,
    EventNameList,
    EventPage,
    EventSummary,
)
from tidings.eventstore.repository import EventRepository
from tidings.kit.pagination import Paging, decode_cursor, page
from tidings.kit.time import isoformat
from tidings.models import AutomationRun
from tidings.routing import ApiRoute


def _runs_by_event(session: Session, event_ids: list[int]) -> dict[int, list[AutomationRun]]:
    found: dict[int, list[AutomationRun]] = {}
    for run in RunRepository(session).of_events(event_ids):
        if run.event_pk is not None:
            found.setdefault(run.event_pk, []).append(run)
    return found


router = APIRouter(prefix="/integrations/segment", tags=["segment events"], route_class=ApiRoute)

SEGMENT = "segment"
EventType = Literal["identify", "track", "group", "page", "screen", "alias"]


@router.get("/events", response_model=EventPage)
def list_events(
    caller: Caller,
    session: ReadSession,
    type: EventType | None = None,
    event: Annotated[str | None, Query(description="Event name, e.g. track/Order Shipped")] = None,
    userId: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EventPage:
    """Received Segment events, newest first."""
    rows = EventRepository(session).page(
        caller,
        SEGMENT,
        before_id=decode_cursor(cursor),
        limit=limit + 1,
        event_type=type,
        name=event,
        user_id=userId,
    )
    found = page(rows, limit)
    runs = _runs_by_event(session, [row.id for row in found.rows])
    return EventPage(
        paging=Paging(cursor=found.cursor, more=found.more),
        results=[EventSummary.of(row, runs.get(row.id, [])) for row in found.rows],
    )


@router.get("/events/{message_id}", response_model=EventDetail)
def get_event(message_id: str, caller: Caller, session: ReadSession) -> EventDetail:
    """One event: its raw payload, processing status, diagnostics and profile diff."""
    row = found(
        EventRepository(session).by_message_id(caller, SEGMENT, message_id),
        NotFound(
            f"No Segment event with messageId {message_id!r} in this environment. "
            "GET /integrations/segment/events lists the ones received.",
            code="event_not_found",
            field="messageId",
        ),
    )
    return EventDetail.of(row, _runs_by_event(session, [row.id]).get(row.id, []))


@router.get("/event-names", response_model=EventNameList)
def list_event_names(caller: Caller, session: ReadSession) -> EventNameList:
    """Each distinct event name (identify, group, track/…), with counts and automations."""
    triggers = automation_service.enabled_triggers(session, caller.environment_id, SEGMENT)
    return EventNameList(
        results=[
            EventName(
                name=name,
                count=count,
                first_seen=isoformat(first) or "",
                last_seen=isoformat(last) or "",
                automations=triggers.get(name, []),
                unmapped=not triggers.get(name),
            )
            for name, count, first, last in EventRepository(session).names(caller, SEGMENT)
        ]
    )
