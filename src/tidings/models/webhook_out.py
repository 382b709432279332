"""Outbound webhooks: the endpoints customers register, and each delivery to one of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, JSONValue, UTCDateTime
from tidings.models.stamped import Stamped


class WebhookDeliveryStatus:
    PENDING = "pending"  # waiting for its (next) attempt, at `next_attempt_at` when set
    SENDING = "sending"  # an attempt is under way (`sending_since`, `owner`)
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED = "failed"  # out of attempts, or refused for good (the outbound guard)

    OPEN = (PENDING, SENDING)
    ALL = (PENDING, SENDING, SUCCEEDED, FAILED)


class WebhookEndpoint(Stamped, Base):
    """A URL an environment's events are POSTed to, signed with the endpoint's secret.

    `secrets_ciphertext` holds the signing secrets as one encrypted JSON list (the
    provider-config key): the current one, and after a rotation the previous one until it
    expires. `event_types` is the list as the API shows it; `webhook_subscription` holds one
    row per type, the index the send path looks endpoints up by.
    """

    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_environment", "environment_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSONValue)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secrets_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class WebhookSubscription(Base):
    """One (environment, event type, endpoint): the moment an event happens, its deliveries
    are inserted from these rows in one statement, on the primary key's prefix."""

    __tablename__ = "webhook_subscription"

    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    event_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), primary_key=True
    )


class WebhookDelivery(EnvironmentRow, Stamped, Base):
    """One event for one endpoint: the exact body, its attempts and the last response.

    `event_id` is the Standard Webhooks `webhook-id`: the same for every endpoint the event
    goes to, every retry and every replay, so a receiver can drop duplicates.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_environment", "environment_id", "id"),
        Index("ix_webhook_delivery_endpoint", "endpoint_id", "id"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
    )

    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    replay_of: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
