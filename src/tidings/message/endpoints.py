from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from tidings.db import Outbox
from tidings.dependencies import Caller, DatabaseDep, ReadSession, SettingsDep
from tidings.kit.pagination import decode_cursor, page
from tidings.message import service
from tidings.message.idempotency import Answer, IdempotentRequest, answer_once
from tidings.message.repository import MessageRepository
from tidings.message.schemas import (
    HistoryList,
    MessagePage,
    MessageView,
    OutputList,
    ResendResponse,
    SendBody,
    SendResponse,
)
from tidings.models import Message
from tidings.routing import ApiRoute

router = APIRouter(tags=["messages"], route_class=ApiRoute)


def _json(body: dict[str, Any], status_code: int) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@router.post("/send", status_code=202, response_model=SendResponse)
def send(
    body: SendBody,
    request: Request,
    caller: Caller,
    database: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Send a message: one per recipient. Answers 202 `{requestId}` once committed.

    With `Idempotency-Key`, a repeat of the same body replays the first response (status and
    body) for 24 hours; the same key with a different body is refused with 409.
    """
    idempotent = IdempotentRequest.of(
        caller.environment_id,
        idempotency_key,
        body.model_dump(mode="json"),
        settings.idempotency_ttl_seconds,
    )

    def accept(session: Session, outbox: Outbox) -> Answer:
        request_id, messages = service.accept_send(
            session,
            caller,
            body.message,
            message_timeout=timedelta(seconds=settings.message_timeout_seconds),
            source={"type": "api"},
        )
        outbox.add_messages(messages, caller.environment_id)
        return 202, {"requestId": request_id}

    status_code, answer = answer_once(database, idempotent, accept)
    return _json(answer, status_code)


def _view(session: Any, message: Message) -> MessageView:
    return service.view(message, MessageRepository(session).deliveries(message))


@router.get("/messages", response_model=MessagePage)
def list_messages(
    caller: Caller,
    session: ReadSession,
    status: str | None = None,
    recipient: str | None = None,
    notification: str | None = None,
    tag: str | None = None,
    trace_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> MessagePage:
    """Messages, newest first, filtered by status, recipient, notification, tag or trace_id."""
    rows = MessageRepository(session).page(
        caller.environment_id,
        before_id=decode_cursor(cursor),
        limit=limit + 1,
        status=status.upper() if status else None,
        recipient=recipient,
        notification=notification,
        tag=tag,
        trace_id=trace_id,
    )
    found = page(rows, limit)
    return MessagePage(paging=found.paging(), results=[_view(session, row) for row in found.rows])


@router.get("/messages/{message_id}", response_model=MessageView)
def get_message(message_id: str, caller: Caller, session: ReadSession) -> MessageView:
    return _view(session, service.get_message(session, caller, message_id))


@router.get("/messages/{message_id}/history", response_model=HistoryList)
def get_history(message_id: str, caller: Caller, session: ReadSession) -> HistoryList:
    """Every stage the message went through, oldest first."""
    message = service.get_message(session, caller, message_id)
    return HistoryList(results=service.history_view(message, session))


def _courier_content(content: dict[str, Any]) -> dict[str, Any]:
    """A channel's rendered content with Courier's six fields always present (its SDKs
    require them), beside the channel's own fields. A body that is not text (a webhook's
    JSON) is given as its JSON text."""

    def text(key: str) -> str:
        value = content.get(key)
        return value if isinstance(value, str) else ""

    body = content.get("body")
    body_text = (
        body if isinstance(body, str) else orjson.dumps(body).decode() if body is not None else ""
    )
    return {
        **content,
        "title": text("title") or text("subject"),
        "subject": text("subject") or text("title"),
        "body": body_text or text("text"),
        "text": text("text") or body_text,
        "html": text("html"),
        "blocks": [],
    }


@router.get("/messages/{message_id}/output", response_model=OutputList)
def get_output(message_id: str, caller: Caller, session: ReadSession) -> OutputList:
    """The rendered content, per channel: Courier's `title`, `subject`, `body`, `text`,
    `html` and `blocks`, beside the channel's own fields."""
    outputs = service.output_view(service.get_message(session, caller, message_id))
    return OutputList(
        results=[{**output, "content": _courier_content(output["content"])} for output in outputs]
    )


@router.post("/messages/{message_id}/cancel", response_model=MessageView)
def cancel_message(message_id: str, caller: Caller, database: DatabaseDep) -> MessageView:
    """Cancel a message that has not been sent yet."""
    with database.write() as (session, _):
        message = service.cancel(session, caller, message_id)
        return _view(session, message)


@router.post("/messages/{message_id}/resend", status_code=202, response_model=ResendResponse)
def resend_message(
    message_id: str,
    caller: Caller,
    database: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Send a message that was not sent (UNDELIVERABLE, UNROUTABLE, UNMAPPED) again, as a new
    message rendered with its template's current content; 409 for any other, or for one
    already resent. Answers 202 `{requestId, messageId, resendOf}` once committed; both
    messages' histories link them. With `Idempotency-Key`, a repeat replays the first answer.
    """
    idempotent = IdempotentRequest.of(
        caller.environment_id,
        idempotency_key,
        {"resend": message_id},
        settings.idempotency_ttl_seconds,
    )

    def accept(session: Session, outbox: Outbox) -> Answer:
        resent = service.resend(
            session,
            caller,
            message_id,
            by=f"API key {caller.key_id}",
            message_timeout=timedelta(seconds=settings.message_timeout_seconds),
        )
        outbox.add_messages([resent], caller.environment_id)
        return 202, {
            "requestId": resent.message_id,
            "messageId": resent.message_id,
            "resendOf": message_id,
        }

    status_code, answer = answer_once(database, idempotent, accept)
    return _json(answer, status_code)
