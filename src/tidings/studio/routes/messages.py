"""Messages log with filters, a message's timeline and rendered output, and resending the
messages that were not sent (one, or those of a filtered list)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from tidings.dependencies import SettingsDep
from tidings.errors import AppError
from tidings.message import service as message_service
from tidings.message.repository import MessageRepository
from tidings.models import Message, MessageStatus
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
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
# The most messages one "Resend these N messages" takes: a list page's largest `limit`.
RESEND_AT_MOST = 200


@router.get("/messages")
def list_messages(page: Page) -> Response:
    """The log, newest first, filtered by the query string's status, recipient, template
    (`notification`), tag and time enqueued (`from`, `to`)."""
    query = ListQuery(page.request, f"{PREFIX}/messages", PAGE_SIZE)
    status = query.choice("status", STATUSES, "Status")
    recipient, notification, tag = (
        query.text("recipient"),
        query.text("notification"),
        query.text("tag"),
    )
    enqueued_from, enqueued_to = query.time("from", "From"), query.time("to", "To")
    with page.database.read() as session:
        repository = MessageRepository(session)
        listing = query.newest_first(
            lambda before_id, after_id, limit: repository.page(
                page.scope.environment_id,
                before_id=before_id,
                after_id=after_id,
                limit=limit,
                status=status,
                recipient=recipient,
                notification=notification,
                tag=tag,
                enqueued_from=enqueued_from,
                enqueued_to=enqueued_to,
            )
        )
        if query.errors:
            listing = empty()
        messages = [sent_message(session, row) for row in listing.rows]
        resent_as = _resent_as(session, page.scope.environment_id, listing.rows)
    resendable = [
        row.message_id
        for row in listing.rows
        if row.status in message_service.RESENDABLE and row.message_id not in resent_as
    ]
    resent, refused = (page.request.query_params.get(name, "") for name in ("resent", "refused"))
    flash = None
    if resent.isdigit():
        flash = f"Resent {resent} message(s): each links to its new message below."
        if refused.isdigit() and int(refused):
            flash += f" {refused} could not be resent: already resent, or no longer failed."
    template = "_messages.html" if page.fragment else "messages.html"
    return query.render(
        template,
        listing,
        section="messages",
        messages=messages,
        statuses=STATUSES,
        resent_as=resent_as,
        resendable=resendable,
        resend_action=query.url_at(f"{PREFIX}/messages/resend"),
        flash=flash,
    )


def _resent_as(session: Session, environment_id: str, rows: list[Message]) -> dict[str, Message]:
    """The new message each of `rows` was resent as, by the resent message's id."""
    by_pk = message_service.resent_as_of(session, rows)
    found = MessageRepository(session).by_message_ids(environment_id, list(by_pk.values()))
    return {
        row.message_id: found[by_pk[row.id]]
        for row in rows
        if row.id in by_pk and by_pk[row.id] in found
    }


def _message_page(page: Page, message_id: str, flash: str | None) -> Response:
    with page.database.read() as session:
        message = message_service.get_message(session, page.scope, message_id)
        sent = sent_message(session, message)
        resent_as = _resent_as(session, page.scope.environment_id, [message]).get(message_id)
    resend_of = next((entry["resend_of"] for entry in sent.history if entry.get("resend_of")), None)
    return render(
        page.request,
        "message.html",
        section="messages",
        sent=sent,
        outputs=message_service.output_view(message),
        render_failures=message.output.get("failures") or [],
        resendable=message.status in message_service.RESENDABLE and resent_as is None,
        resent_as=resent_as,
        resend_of=resend_of,
        flash=flash,
    )


@router.get("/messages/{message_id}")
def message_detail(message_id: str, page: Page) -> Response:
    return _message_page(page, message_id, None)


def _resend(
    page: Page, settings: SettingsDep, message_ids: list[str]
) -> tuple[list[str], list[str]]:
    """Resend each message (as POST /messages/{id}/resend) in one unit of work; the new
    messages' ids, and why each refused one was refused."""
    resent, refused = [], []
    with page.database.write() as (session, outbox):
        for message_id in message_ids:
            try:
                # Refused before it writes anything, so the others go on.
                accepted = message_service.resend(
                    session,
                    page.scope,
                    message_id,
                    by=f"Studio: {page.admin.email}",
                    message_timeout=timedelta(seconds=settings.message_timeout_seconds),
                )
            except AppError as exc:
                refused.append(exc.message)
                continue
            outbox.add_messages([accepted], page.scope.environment_id)
            resent.append(accepted.message_id)
    return resent, refused


@router.post("/messages/resend")
def resend_messages(page: Page, form: CheckedForm, settings: SettingsDep) -> Response:
    """ "Resend these N messages" of a filtered list: back to the list, with its filters
    (the query string), where each resent message links to its new one."""
    message_ids = [item for item in form_text(form, "message_ids").split(",") if item.strip()]
    resent, refused = _resend(page, settings, message_ids[:RESEND_AT_MOST])
    back = (
        f"{PREFIX}/messages?{page.request.url.query}&"
        if page.request.url.query
        else f"{PREFIX}/messages?"
    )
    outcome = urlencode({"resent": len(resent), "refused": len(refused)})
    return see_other(f"{back}{outcome}")


@router.post("/messages/{message_id}/resend")
def resend_message(
    message_id: str, page: Page, form: CheckedForm, settings: SettingsDep
) -> Response:
    """Resend one message; on to the new message's page, or back with why it was refused."""
    resent, refused = _resend(page, settings, [message_id])
    if not resent:
        return _message_page(page, message_id, refused[0])
    return see_other(page_path("messages", resent[0]))
