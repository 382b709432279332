from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import (
    Base,
    EnvironmentRow,
    JSONValue,
    KeyedRow,
    UTCDateTime,
)


class MessageStatus:
    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    ROUTED = "ROUTED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    UNDELIVERABLE = "UNDELIVERABLE"
    UNROUTABLE = "UNROUTABLE"
    UNMAPPED = "UNMAPPED"
    CANCELED = "CANCELED"
    FILTERED = "FILTERED"
    # Not sent: the recipient's address on every channel that could take it is on the
    # suppression list (suppression/service.py); the reason is the entry's.
    SUPPRESSED = "SUPPRESSED"
    # What the vendor reported after sending (callback/service.py): Courier's OPENED and
    # CLICKED, and Tidings' own BOUNCED and COMPLAINED (read by Courier's SDKs as
    # UNDELIVERABLE and DELIVERED: `courier_status`).
    OPENED = "OPENED"
    CLICKED = "CLICKED"
    BOUNCED = "BOUNCED"
    COMPLAINED = "COMPLAINED"

    FINAL = frozenset(
        {
            DELIVERED,
            OPENED,
            CLICKED,
            BOUNCED,
            COMPLAINED,
            UNDELIVERABLE,
            UNROUTABLE,
            UNMAPPED,
            CANCELED,
            FILTERED,
            SUPPRESSED,
        }
    )
    CANCELABLE = frozenset({ENQUEUED, DELAYED, ROUTED})
    # A provider accepted the message: a later SENT (of another channel, or recorded late)
    # never moves these back, and a failure of another channel does not fail the message.
    ACCEPTED = frozenset({SENT, DELIVERED, OPENED, CLICKED, BOUNCED, COMPLAINED})


# What vendors report after a send, weakest first. A report moves a message, or a delivery,
# only up this ladder (`moves_up`): a late DELIVERED never undoes BOUNCED, an open after a
# click leaves CLICKED, a complaint outranks everything. Statuses off the ladder (SENT, a
# failure Tidings recorded itself, …) are below it. A vendor's failure report that is not a
# bounce (UNDELIVERABLE) is applied only to a delivery below the ladder.
FEEDBACK_LADDER = (
    MessageStatus.DELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
    MessageStatus.BOUNCED,
    MessageStatus.COMPLAINED,
)


def feedback_rank(status: str) -> int:
    """A message or delivery status's place on `FEEDBACK_LADDER` (either case); -1 when it is
    not on it."""
    upper = status.upper()
    return FEEDBACK_LADDER.index(upper) if upper in FEEDBACK_LADDER else -1


def moves_up(current: str, reported: str) -> bool:
    """Whether a vendor's `reported` status moves a message or delivery now at `current`.
    The one precedence rule of delivery feedback; a CANCELED message never moves."""
    if current == MessageStatus.CANCELED:
        return False
    return feedback_rank(reported) > feedback_rank(current)


class Message(EnvironmentRow, Base):
    """One message to one recipient, and its state machine."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index("ix_message_listing", "environment_id", "id"),
        Index("ix_message_status", "environment_id", "status", "id"),
        Index("ix_message_recipient", "environment_id", "recipient", "id"),
        Index("ix_message_notification", "environment_id", "notification_id", "id"),
        Index("ix_message_trace", "environment_id", "trace_id", "id"),
        Index("ix_message_request", "environment_id", "request_id"),
    )

    message_id: Mapped[str] = mapped_column(String(60))
    request_id: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(60), nullable=True)
    reason_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(300), nullable=True)
    to: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    notification_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    channels: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    providers: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONValue, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    trace_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    output: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    source: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    timeout_at: Mapped[datetime] = mapped_column(UTCDateTime())
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The first open and the first click a provider reported (callback/service.py).
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When a sweep last claimed it for re-driving (jobs/engine.py): sweepers never take the
    # same row at once, and one row is not re-driven again while its claim holds.
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryStatus:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    # The provider got the message and its answer was lost: never retried (it may have
    # been sent), so never sent twice by Tidings.
    UNKNOWN = "unknown"
    # What the vendor reported later (`FEEDBACK_LADDER`).
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    # Did not reach the recipient: Tidings or the vendor gave up, or it bounced.
    NOT_DELIVERED = frozenset({FAILED, BOUNCED})
    # A vendor's report (or Tidings' failure) settled it: a SENT recorded late keeps it.
    SETTLED = frozenset({DELIVERED, FAILED, OPENED, CLICKED, BOUNCED, COMPLAINED})


class MessageDelivery(KeyedRow, Base):
    """One channel of a routed message: its provider chain and where it stands."""

    __tablename__ = "message_delivery"
    __table_args__ = (
        Index("ix_message_delivery_message", "message_pk"),
        Index("ix_message_delivery_due", "status", "next_attempt_at"),
        Index("ix_message_delivery_provider_id", "provider", "provider_message_id"),
    )

    message_pk: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    providers: Mapped[list[str]] = mapped_column(JSONValue)
    provider_index: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The lease (models/worker.py) of the process carrying out a `sending` attempt.
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # When a sweep last claimed it for re-driving (jobs/engine.py): sweepers never take the
    # same row at once, and one row is not re-driven again while its claim holds.
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MessageEvent(KeyedRow, Base):
    """The history of a message: one row per stage."""

    __tablename__ = "message_event"
    __table_args__ = (Index("ix_message_event_message", "message_pk", "id"),)

    message_pk: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)


class IdempotencyRecord(KeyedRow, Base):
    """The first response to a POST carrying an `Idempotency-Key`, replayed for repeats."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("environment_id", "key"),)

    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
