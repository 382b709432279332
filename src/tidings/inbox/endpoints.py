from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from tidings.dependencies import Caller, DatabaseDep, ReadSession, SecretDep
from tidings.errors import BadRequest
from tidings.inbox import service
from tidings.inbox.repository import Status
from tidings.inbox.schemas import (
    InboxMessagePage,
    InboxMessageView,
    ReadAllResponse,
    TokenBody,
    TokenResponse,
    UnreadCount,
)
from tidings.inbox.service import InboxBroker, InboxUser
from tidings.kit.pagination import decode_cursor, page
from tidings.kit.time import isoformat
from tidings.routing import ApiRoute
from tidings.workspace.keys import key_from_authorization

router = APIRouter(prefix="/inbox", tags=["inbox"], route_class=ApiRoute)

# Event ids are row ids: decimal, and small enough for a 64-bit column.
_EVENT_ID = re.compile(r"[0-9]{1,18}")


def get_broker(request: Request) -> InboxBroker:
    """The process's broker: deliveries in this process publish to it after commit."""
    broker: InboxBroker = request.app.state.inbox_broker
    return broker


Broker = Annotated[InboxBroker, Depends(get_broker)]
# The server secret that inbox tokens are signed under.
Secret = SecretDep


def authenticate_user(request: Request, database: DatabaseDep, secret: Secret) -> InboxUser:
    token = key_from_authorization(request.headers.get("authorization"))
    return service.authenticate(database, secret, token, "Authorization")


def authenticate_stream_user(
    request: Request,
    database: DatabaseDep,
    secret: Secret,
    token: Annotated[str | None, Query()] = None,
) -> InboxUser:
    """The stream also takes `?token=`: browsers' EventSource cannot set headers."""
    header_token = key_from_authorization(request.headers.get("authorization"))
    if header_token is not None:
        return service.authenticate(database, secret, header_token, "Authorization")
    return service.authenticate(database, secret, token, "token")


User = Annotated[InboxUser, Depends(authenticate_user)]
StreamUser = Annotated[InboxUser, Depends(authenticate_stream_user)]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("/tokens", response_model=TokenResponse)
def issue_token(body: TokenBody, caller: Caller, secret: Secret) -> TokenResponse:
    """Issue a token that opens one user's inbox (API key required). Hand it to the browser."""
    token, expires_at = service.issue_token(secret, caller, body.user_id, body.expires_in_seconds)
    return TokenResponse(token=token, expires_at=isoformat(expires_at) or "")


@router.get("/messages", response_model=InboxMessagePage)
def list_messages(
    user: User,
    session: ReadSession,
    status: Status | None = None,
    cursor: str | None = None,
    limit: Limit = 24,
) -> InboxMessagePage:
    """The user's messages, newest first. Archived messages only with `status=archived`."""
    rows = service.list_messages(session, user, status, decode_cursor(cursor), limit + 1)
    found = page(rows, limit)
    return InboxMessagePage(
        paging=found.paging(), results=[service.message_view(row) for row in found.rows]
    )


@router.get("/messages/count", response_model=UnreadCount)
def count_unread(user: User, session: ReadSession) -> UnreadCount:
    """How many messages the user has not read, archived ones left out."""
    return UnreadCount(count=service.count_unread(session, user))


@router.post("/messages/read-all", response_model=ReadAllResponse)
def mark_all_read(user: User, database: DatabaseDep) -> ReadAllResponse:
    with database.write() as (session, _):
        updated = service.mark_all_read(session, user)
    return ReadAllResponse(updated=updated)


@router.post("/messages/{message_id}/read", response_model=InboxMessageView)
def mark_read(message_id: str, user: User, database: DatabaseDep) -> InboxMessageView:
    with database.write() as (session, _):
        return service.message_view(service.mark_read(session, user, message_id))


@router.post("/messages/{message_id}/unread", response_model=InboxMessageView)
def mark_unread(message_id: str, user: User, database: DatabaseDep) -> InboxMessageView:
    with database.write() as (session, _):
        return service.message_view(service.mark_unread(session, user, message_id))


@router.post("/messages/{message_id}/archive", response_model=InboxMessageView)
def archive(message_id: str, user: User, database: DatabaseDep) -> InboxMessageView:
    with database.write() as (session, _):
        return service.message_view(service.archive(session, user, message_id))


def _last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    if not _EVENT_ID.fullmatch(value.strip()):
        raise BadRequest(
            f"Last-Event-ID {value!r} is not an event id from this stream. Send the `id` of the "
            "last event received, or leave the header out to receive only new messages.",
            code="invalid_last_event_id",
            field="Last-Event-ID",
        )
    return int(value.strip())


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    user: StreamUser,
    database: DatabaseDep,
    broker: Broker,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-Sent Events: an `event: message` with the message as `data` for each new one.

    Authenticate with `Authorization: Bearer <inbox token>` or, for EventSource, `?token=`.
    A reconnecting client sends `Last-Event-ID` and gets what it missed first.
    """
    after_id = _last_event_id(last_event_id)
    return StreamingResponse(
        service.stream(database, broker, user, after_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
