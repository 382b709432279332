"""Messages log with filters, and a message's timeline and rendered output."""

from __future__ import annotations

from operator import attrgetter

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.dependencies import DatabaseDep
from tidings.message import service as message_service
from tidings.message.repository import MessageRepository
from tidings.models import MessageStatus
from tidings.studio.dependencies import PREFIX, Admin
from tidings.studio.listing import ListQuery, empty
from tidings.studio.templating import render
from tidings.studio.trace import sent_message

router = APIRouter()

STATUSES = sorted(
    {
        value
        for name, value in vars(MessageStatus).items()
        if name.isupper() and isinstance(value, str)
    }
)


PAGE_SIZE = 100


@router.get("/messages")
def list_messages(request: Request, admin: Admin, database: DatabaseDep) -> Response:
    """The log, newest first, filtered by the query string's status, recipient, template
    (`notification`), tag and time enqueued (`from`, `to`)."""
    query = ListQuery(request, f"{PREFIX}/messages", PAGE_SIZE)
    status = query.choice("status", STATUSES, "Status")
    recipient, notification, tag = (
        query.text("recipient"),
        query.text("notification"),
        query.text("tag"),
    )
    enqueued_from, enqueued_to = query.time("from", "From"), query.time("to", "To")
    with database.read() as session:
        repository = MessageRepository(session)
        listing = query.newest_first(
            lambda before_id, after_id, limit: repository.page(
                admin.scope.environment_id,
                before_id=before_id,
                after_id=after_id,
                limit=limit,
                status=status,
                recipient=recipient,
                notification=notification,
                tag=tag,
                enqueued_from=enqueued_from,
                enqueued_to=enqueued_to,
            ),
            key=attrgetter("id"),
        )
        if query.errors:
            listing = empty()
        messages = [sent_message(session, row) for row in listing.rows]
    template = "_messages.html" if request.headers.get("hx-request") else "messages.html"
    return query.render(
        request, template, listing, section="messages", messages=messages, statuses=STATUSES
    )


@router.get("/messages/{message_id}")
def message_detail(
    message_id: str, request: Request, admin: Admin, database: DatabaseDep
) -> Response:
    with database.read() as session:
        message = message_service.get_message(session, admin.scope, message_id)
        sent = sent_message(session, message)
    return render(
        request,
        "message.html",
        section="messages",
        sent=sent,
        outputs=message_service.output_view(message),
        render_failures=message.output.get("failures") or [],
    )
