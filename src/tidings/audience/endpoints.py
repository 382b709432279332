from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from tidings.audience import service
from tidings.audience.schemas import (
    AudienceBody,
    AudiencePage,
    AudienceSaved,
    AudienceView,
    MemberPage,
    MemberView,
    ScanView,
    StayPage,
    StayView,
)
from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.kit.pagination import PageOf20
from tidings.kit.time import isoformat
from tidings.models import Audience
from tidings.routing import ApiRoute

router = APIRouter(tags=["audiences"], route_class=ApiRoute)


def view(session: Session, audience: Audience) -> AudienceView:
    definition = audience.definition
    courier = definition.get("filter")
    return AudienceView(
        id=audience.audience_id,
        name=audience.name,
        description=audience.description or "",
        created_at=isoformat(audience.created_at) or "",
        updated_at=isoformat(audience.updated_at) or "",
        filter=courier,
        operator=courier.get("operator") if isinstance(courier, dict) else None,
        condition=definition["condition"],
        version=audience.version,
        member_count=service.member_count(session, audience),
        scan=ScanView(
            state="ready" if service.scan_state(audience) == "ready" else "scanning",
            version=audience.scan_version,
            scanned=audience.scanned,
            total=audience.scan_total,
            started_at=isoformat(audience.scan_started_at),
            finished_at=isoformat(audience.scan_finished_at),
        ),
    )


@router.get("/audiences", response_model=AudiencePage)
def list_audiences(caller: Caller, session: ReadSession, paging: PageOf20) -> AudiencePage:
    """The environment's audiences, in creation order."""
    found = paging.page(
        service.audiences_page(session, caller, paging.after_id, paging.rows_to_read)
    )
    return AudiencePage(items=[view(session, row) for row in found.rows], paging=found.paging())


@router.get("/audiences/{audience_id}", response_model=AudienceView)
def get_audience(audience_id: str, caller: Caller, session: ReadSession) -> AudienceView:
    return view(session, service.get_audience(session, caller, audience_id))


@router.put("/audiences/{audience_id}", response_model=AudienceSaved)
def put_audience(
    audience_id: str, body: AudienceBody, caller: Caller, database: DatabaseDep
) -> AudienceSaved:
    """Create or replace the audience. A new condition is evaluated against every profile
    in the background (`scan` shows the progress); members change as the scan reaches
    them, and with every event and profile change after that."""
    given = service.AudienceInput(
        body.name, body.description, body.condition, body.filter, body.operator
    )
    with database.write() as (session, outbox):
        audience, _ = service.put_audience(session, outbox, caller, audience_id, given)
        return AudienceSaved(audience=view(session, audience))


@router.delete("/audiences/{audience_id}", status_code=204)
def delete_audience(audience_id: str, caller: Caller, database: DatabaseDep) -> Response:
    """Delete the audience with its members and their history."""
    with database.write() as (session, _):
        service.delete_audience(session, caller, audience_id)
    return Response(status_code=204)


@router.get("/audiences/{audience_id}/members", response_model=MemberPage)
def list_members(
    audience_id: str, caller: Caller, session: ReadSession, paging: PageOf20
) -> MemberPage:
    """The current members, in the order they entered."""
    audience = service.get_audience(session, caller, audience_id)
    found = paging.page(
        service.members_page(session, audience, paging.after_id, paging.rows_to_read)
    )
    return MemberPage(
        items=[
            MemberView(
                added_at=isoformat(row.entered_at) or "",
                audience_id=audience.audience_id,
                audience_version=row.version,
                member_id=row.user_id,
                reason="matched the audience's condition",
            )
            for row in found.rows
        ],
        paging=found.paging(),
    )


@router.get("/audiences/{audience_id}/history", response_model=StayPage)
def list_stays(
    audience_id: str,
    caller: Caller,
    session: ReadSession,
    paging: PageOf20,
    user_id: Annotated[str | None, Query(max_length=300)] = None,
) -> StayPage:
    """Every entry and exit, in entry order: one item per stay, `left_at` null while the
    user is still a member (`user_id`: that user's only)."""
    audience = service.get_audience(session, caller, audience_id)
    found = paging.page(
        service.stays_page(session, audience, paging.after_id, paging.rows_to_read, user_id)
    )
    return StayPage(
        items=[
            StayView(
                member_id=row.user_id,
                audience_version=row.version,
                entered_at=isoformat(row.entered_at) or "",
                left_at=isoformat(row.left_at),
            )
            for row in found.rows
        ],
        paging=found.paging(),
    )
