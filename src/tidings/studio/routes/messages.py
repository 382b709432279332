"""Messages log with filters, and a message's timeline and rendered output."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.dependencies import DatabaseDep
from tidings.message import service as message_service
from tidings.message.repository import MessageRepository
from tidings.models import MessageStatus
from tidings.studio.dependencies import Admin
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


@router.get("/messages")
def list_messages(
    request: Request,
    admin: Admin,
    database: DatabaseDep,
    status: str = "",
    recipient: str = "",
    notification: str = "",
    tag: str = "",
) -> Response:
    with database.read() as session:
        rows = MessageRepository(session).page(
            admin.scope.environment_id,
            before_id=None,
            limit=100,
            status=status.upper() or None,
            recipient=recipient.strip() or None,
            notification=notification.strip() or None,
            tag=tag.strip() or None,
        )
        messages = [sent_message(session, row) for row in rows]
    filters = {"status": status, "recipient": recipient, "notification": notification, "tag": tag}
    template = "_messages.html" if request.headers.get("hx-request") else "messages.html"
    return render(
        request, template, section="messages", messages=messages, filters=filters, statuses=STATUSES
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
