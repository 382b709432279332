from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.errors import NotFound
from tidings.kit.api import creates_or_replaces, from_row
from tidings.kit.pagination import PageOf50
from tidings.kit.time import epoch_ms
from tidings.models import Notification, NotificationVersion
from tidings.notification import service
from tidings.notification.repository import NotificationRepository
from tidings.notification.schemas import (
    DroppedLinkOut,
    NotificationBody,
    NotificationList,
    NotificationResponse,
    NotificationVersionList,
    NotificationVersionResponse,
    PreviewBody,
    PreviewResponse,
    VersionNode,
)
from tidings.routing import ApiRoute
from tidings.template.render import RenderContext
from tidings.workspace.service import Scope

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=ApiRoute)


def _view(notification: Notification, savers: tuple[str, str]) -> NotificationResponse:
    creator, updater = savers
    return from_row(
        NotificationResponse,
        notification,
        id=notification.notification_id,
        created=epoch_ms(notification.created_at),
        updated=epoch_ms(notification.updated_at),
        creator=creator,
        updater=updater,
    )


def _views(session: Session, notifications: Sequence[Notification]) -> list[NotificationResponse]:
    savers = NotificationRepository(session).savers(notifications)
    return [_view(row, savers.get(row.id, ("", ""))) for row in notifications]


def _version_view(
    notification_id: str, version: NotificationVersion
) -> NotificationVersionResponse:
    return from_row(NotificationVersionResponse, version, id=notification_id)


@router.get("", response_model=NotificationList)
def list_notifications(
    caller: Caller,
    session: ReadSession,
    paging: PageOf50,
) -> NotificationList:
    found = paging.page(
        NotificationRepository(session).page(caller, paging.after_id, paging.rows_to_read)
    )
    return NotificationList(paging=found.paging(), results=_views(session, found.rows))


@router.put("/{notification_id}", **creates_or_replaces(NotificationResponse))
def put_notification(
    notification_id: str,
    body: NotificationBody,
    caller: Caller,
    database: DatabaseDep,
    response: Response,
) -> NotificationResponse:
    """Create or replace a template. Liquid is checked on save. A change is recorded as a new
    version (`GET /notifications/{id}/versions`)."""
    with database.write() as (session, _):
        notification, _, outcome = service.save(session, caller, notification_id, body)
        (view,) = _views(session, [notification])
    response.status_code = 201 if outcome == "created" else 200
    return view


@router.get("/{notification_id}", response_model=NotificationResponse)
def get_notification(
    notification_id: str, caller: Caller, session: ReadSession
) -> NotificationResponse:
    (view,) = _views(session, [service.get(session, caller, notification_id)])
    return view


@router.delete("/{notification_id}", status_code=204)
def delete_notification(notification_id: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        if not NotificationRepository(session).delete(caller, notification_id):
            raise service.not_found(notification_id)
    return Response(status_code=204)


@router.get("/{notification_id}/versions", response_model=NotificationVersionList)
def list_versions(
    notification_id: str,
    caller: Caller,
    session: ReadSession,
    paging: PageOf50,
) -> NotificationVersionList:
    """Every saved version of the template, oldest first; the last is the template now."""
    notification = service.get(session, caller, notification_id)
    rows = NotificationRepository(session).version_page(
        notification, paging.after_id, paging.rows_to_read
    )
    found = paging.page(rows, key=attrgetter("version"))
    current = NotificationRepository(session).latest_version_number(notification)
    return NotificationVersionList(
        paging=found.paging(),
        results=[_version_view(notification_id, row) for row in found.rows],
        versions=[
            VersionNode(
                version=f"{'published:' if row.version == current else ''}v{row.version}",
                created=epoch_ms(row.created_at),
                creator=row.saved_by or "",
            )
            for row in found.rows
        ],
    )


@router.get("/{notification_id}/versions/{version}", response_model=NotificationVersionResponse)
def get_version(
    notification_id: str, version: int, caller: Caller, session: ReadSession
) -> NotificationVersionResponse:
    return _version_view(
        notification_id, service.get_version(session, caller, notification_id, version)
    )


@router.post(
    "/{notification_id}/versions/{version}/restore", response_model=NotificationVersionResponse
)
def restore_version(
    notification_id: str, version: int, caller: Caller, database: DatabaseDep
) -> NotificationVersionResponse:
    """Save that version's template as a new version (history is kept), checked as
    `PUT /notifications/{id}` checks it. Answers the version the template is now: the new
    one, or the current one when it already equals the version restored."""
    with database.write() as (session, _):
        _, saved, _ = service.restore(session, caller, notification_id, version)
        return _version_view(notification_id, saved)


# The data a received Segment event gives a preview (event.service.segment_event_data, put on
# app.state by create_app: the event package builds on this one, so it is handed in).
EventData = Callable[[Session, Scope, str], dict[str, Any] | None]


def get_event_data(request: Request) -> EventData:
    event_data: EventData = request.app.state.event_data
    return event_data


@router.post("/{notification_id}/preview", response_model=PreviewResponse)
def preview_notification(
    notification_id: str,
    body: PreviewBody,
    caller: Caller,
    session: ReadSession,
    event_data: Annotated[EventData, Depends(get_event_data)],
) -> PreviewResponse:
    """Render with sample data and profile, or with a received event's data. Sends nothing."""
    notification = service.get(session, caller, notification_id)
    data: dict[str, Any] = dict(body.data)
    if body.event_message_id:
        source = event_data(session, caller, body.event_message_id)
        if source is None:
            raise NotFound(
                f"No Segment event {body.event_message_id!r} to preview with.",
                code="event_not_found",
                field="event_message_id",
            )
        data = {**source, **data}
    context = RenderContext(
        data=data, profile=body.profile, recipient=body.profile.get("user_id"), urls={}
    )
    rendering = service.render_all(notification.content, context, strict=notification.strict)
    return PreviewResponse(
        channels=rendering.channels,
        errors=rendering.errors,
        dropped_links=[DroppedLinkOut(**link.as_dict()) for link in rendering.dropped_links],
    )
