from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from tidings.dependencies import Caller, DatabaseDep, ReadSession
from tidings.errors import NotFound
from tidings.kit.pagination import PageQuery, page_query
from tidings.kit.time import isoformat
from tidings.models import Notification
from tidings.notification import service
from tidings.notification.repository import NotificationRepository
from tidings.notification.schemas import (
    DroppedLinkOut,
    NotificationBody,
    NotificationList,
    NotificationResponse,
    PreviewBody,
    PreviewResponse,
)
from tidings.routing import ApiRoute
from tidings.template.render import RenderContext
from tidings.workspace.service import Scope

router = APIRouter(prefix="/notifications", tags=["notifications"], route_class=ApiRoute)


def _view(notification: Notification) -> NotificationResponse:
    return NotificationResponse(
        id=notification.notification_id,
        name=notification.name,
        content=notification.content,
        routing=notification.routing,
        strict=notification.strict,
        topic_id=notification.topic_id,
        created_at=isoformat(notification.created_at) or "",
        updated_at=isoformat(notification.updated_at) or "",
    )


@router.get("", response_model=NotificationList)
def list_notifications(
    caller: Caller,
    session: ReadSession,
    paging: Annotated[PageQuery, Depends(page_query(50))],
) -> NotificationList:
    found = paging.page(
        NotificationRepository(session).page(caller, paging.after_id, paging.rows_to_read)
    )
    return NotificationList(paging=found.paging(), results=[_view(row) for row in found.rows])


@router.put(
    "/{notification_id}",
    response_model=NotificationResponse,
    responses={201: {"model": NotificationResponse, "description": "Created."}},
)
def put_notification(
    notification_id: str,
    body: NotificationBody,
    caller: Caller,
    database: DatabaseDep,
    response: Response,
) -> NotificationResponse:
    """Create or replace a template. Liquid is checked on save."""
    with database.write() as (session, _):
        notification, created = service.save(session, caller, notification_id, body)
        view = _view(notification)
    response.status_code = 201 if created else 200
    return view


@router.get("/{notification_id}", response_model=NotificationResponse)
def get_notification(
    notification_id: str, caller: Caller, session: ReadSession
) -> NotificationResponse:
    return _view(service.get(session, caller, notification_id))


@router.delete("/{notification_id}", status_code=204)
def delete_notification(notification_id: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        if not NotificationRepository(session).delete(caller, notification_id):
            raise service.not_found(notification_id)
    return Response(status_code=204)


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
