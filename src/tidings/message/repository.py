"""Every SQL query on messages, deliveries, history and idempotency records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from tidings.kit.sql import execute_counting, insert_ignoring_conflicts
from tidings.kit.time import utcnow
from tidings.models import (
    DeliveryStatus,
    IdempotencyRecord,
    Message,
    MessageDelivery,
    MessageEvent,
    MessageStatus,
)
from tidings.models.base import UTCDateTime


class MessageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, environment_id: str, message_id: str) -> Message | None:
        return self.session.scalars(
            select(Message).where(
                Message.environment_id == environment_id, Message.message_id == message_id
            )
        ).first()

    def lock(self, message_id: str) -> Message | None:
        return self.session.scalars(
            select(Message)
            .where(Message.message_id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def lock_many(self, message_ids: list[str]) -> dict[str, Message]:
        rows = self.session.scalars(
            select(Message)
            .where(Message.message_id.in_(message_ids))
            .order_by(Message.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {row.message_id: row for row in rows}

    def lock_by_pk(self, pk: int) -> Message | None:
        return self.session.scalars(
            select(Message)
            .where(Message.id == pk)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def history(self, message: Message) -> Sequence[MessageEvent]:
        return self.session.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_pk == message.id)
            .order_by(MessageEvent.id)
        ).all()

    def record(self, message: Message, event_type: str, **data: Any) -> None:
        self.session.add(
            MessageEvent(message_pk=message.id, type=event_type, created_at=utcnow(), data=data)
        )

    def record_sent(
        self,
        delivery_id: int,
        message_pk: int,
        *,
        provider: str,
        channel: str,
        provider_message_id: str | None,
        response: str,
    ) -> bool:
        """The common success: a delivery still `sending` becomes sent, in three statements
        and without loading the message. False when the delivery was not `sending` (a
        callback or a cancel got there first), for the caller's full path."""
        now = utcnow()
        updated = execute_counting(
            self.session,
            update(MessageDelivery)
            .where(
                MessageDelivery.id == delivery_id,
                MessageDelivery.status == DeliveryStatus.SENDING,
            )
            .values(
                status=DeliveryStatus.SENT,
                provider_message_id=provider_message_id,
                error=None,
                sending_since=None,
                updated_at=now,
            ),
        )
        if not updated:
            return False
        self.session.execute(
            insert(MessageEvent).values(
                message_pk=message_pk,
                type="SENT",
                created_at=now,
                data={
                    "channel": channel,
                    "provider": provider,
                    "provider_message_id": provider_message_id,
                    "response": response,
                },
            )
        )
        execute_counting(
            self.session,
            update(Message)
            .where(
                Message.id == message_pk,
                Message.status.not_in([MessageStatus.SENT, MessageStatus.DELIVERED]),
            )
            .values(
                status=MessageStatus.SENT,
                reason=None,
                reason_detail=None,
                sent_at=func.coalesce(Message.sent_at, literal(now, UTCDateTime())),
                updated_at=now,
            ),
        )
        return True

    def deliveries(self, message: Message) -> Sequence[MessageDelivery]:
        return self.session.scalars(
            select(MessageDelivery)
            .where(MessageDelivery.message_pk == message.id)
            .order_by(MessageDelivery.id)
        ).all()

    def lock_delivery(self, delivery_id: int) -> MessageDelivery | None:
        return self.session.scalars(
            select(MessageDelivery)
            .where(MessageDelivery.id == delivery_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def page(
        self,
        environment_id: str,
        *,
        before_id: int | None,
        limit: int,
        status: str | None = None,
        recipient: str | None = None,
        notification: str | None = None,
        tag: str | None = None,
        trace_id: str | None = None,
    ) -> Sequence[Message]:
        query = select(Message).where(Message.environment_id == environment_id)
        if status:
            query = query.where(Message.status == status)
        if recipient:
            query = query.where(Message.recipient == recipient)
        if notification:
            query = query.where(Message.notification_id == notification)
        if trace_id:
            query = query.where(Message.trace_id == trace_id)
        if before_id is not None:
            query = query.where(Message.id < before_id)
        if not tag:
            return self.session.scalars(query.order_by(Message.id.desc()).limit(limit)).all()
        # Tags live in a JSON list: filter them here, reading ahead page by page.
        found: list[Message] = []
        cursor = before_id
        while len(found) < limit:
            batch_query = query if cursor is None else query.where(Message.id < cursor)
            batch = self.session.scalars(batch_query.order_by(Message.id.desc()).limit(500)).all()
            if not batch:
                break
            found.extend(message for message in batch if tag in (message.tags or []))
            cursor = batch[-1].id
        return found[:limit]

    def due_messages(self, before: datetime, limit: int) -> Sequence[str]:
        return self.session.scalars(
            select(Message.message_id)
            .where(
                Message.status.in_([MessageStatus.ENQUEUED, MessageStatus.DELAYED]),
                (Message.send_at.is_(None)) | (Message.send_at <= utcnow()),
                Message.updated_at <= before,
            )
            .order_by(Message.id)
            .limit(limit)
        ).all()

    def stuck_deliveries(
        self, sending_before: datetime, due_before: datetime, limit: int
    ) -> Sequence[int]:
        return self.session.scalars(
            select(MessageDelivery.id)
            .where(
                (
                    (MessageDelivery.status == DeliveryStatus.SENDING)
                    & (MessageDelivery.sending_since <= sending_before)
                )
                | (
                    (MessageDelivery.status == DeliveryStatus.PENDING)
                    & (
                        MessageDelivery.next_attempt_at.is_(None)
                        | (MessageDelivery.next_attempt_at <= due_before)
                    )
                    & (MessageDelivery.updated_at <= due_before)
                )
            )
            .order_by(MessageDelivery.id)
            .limit(limit)
        ).all()

    def delivery_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> MessageDelivery | None:
        return self.session.scalars(
            select(MessageDelivery).where(
                MessageDelivery.provider == provider,
                MessageDelivery.provider_message_id == provider_message_id,
            )
        ).first()


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        return self.session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.environment_id == environment_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.expires_at > utcnow(),
            )
        ).first()

    def claim(
        self,
        environment_id: str,
        key: str,
        request_hash: str,
        status_code: int,
        body: dict[str, Any],
        expires_at: datetime,
    ) -> bool:
        """Store the first response; False when another request holds the key."""
        execute_counting(
            self.session,
            delete(IdempotencyRecord).where(
                IdempotencyRecord.environment_id == environment_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.expires_at <= utcnow(),
            ),
        )
        return bool(
            execute_counting(
                self.session,
                insert_ignoring_conflicts(self.session, IdempotencyRecord).values(
                    environment_id=environment_id,
                    key=key,
                    request_hash=request_hash,
                    status_code=status_code,
                    body=body,
                    created_at=utcnow(),
                    expires_at=expires_at,
                ),
            )
        )
