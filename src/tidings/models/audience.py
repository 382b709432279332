from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, JSONValue, UTCDateTime


class RecipientList(EnvironmentRow, Base):
    """A list (Courier's Lists API): named, dot-separated ids such as `acme.eng.oncall`."""

    __tablename__ = "recipient_list"
    __table_args__ = (UniqueConstraint("environment_id", "list_id"),)

    list_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ListSubscription(EnvironmentRow, Base):
    __tablename__ = "list_subscription"
    __table_args__ = (
        UniqueConstraint("environment_id", "list_id", "user_id"),
        Index("ix_list_subscription_user", "environment_id", "user_id"),
    )

    list_id: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str] = mapped_column(String(300))
    preferences: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionTopic(EnvironmentRow, Base):
    """A subscription topic; its default status applies to users with no preference."""

    __tablename__ = "subscription_topic"
    __table_args__ = (UniqueConstraint("environment_id", "topic_id"),)

    topic_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    default_status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserPreference(EnvironmentRow, Base):
    __tablename__ = "user_preference"
    __table_args__ = (UniqueConstraint("environment_id", "user_id", "topic_id"),)

    user_id: Mapped[str] = mapped_column(String(300))
    topic_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    has_custom_routing: Mapped[bool] = mapped_column(Boolean, default=False)
    custom_routing: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
