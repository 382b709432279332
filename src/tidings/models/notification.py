from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import (
    Base,
    EnvironmentRow,
    JSONValue,
    KeyedRow,
    UTCDateTime,
)
from tidings.models.stamped import Stamped


class Notification(EnvironmentRow, Stamped, Base):
    """A notification template: content per channel, default routing, strictness."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("environment_id", "notification_id"),)

    notification_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    content: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    strict: Mapped[bool] = mapped_column(Boolean, default=False)
    topic_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Open and click tracking of its email, `{"opens": bool, "clicks": bool}`; a key left
    # out (or null) takes the environment's default (engagement/service.py).
    tracking: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)


class NotificationVersion(KeyedRow, Base):
    """One saved template, never changed after insert: its history, and what a restore copies.

    Every save that changes the template adds version N+1; the highest is the template as it
    is now. `saved_by` is the Studio admin's email, the API key id, or `cli` for
    `tidings apply`; `restored_from` is the version a restore copied."""

    __tablename__ = "notification_version"
    __table_args__ = (UniqueConstraint("notification_pk", "version"),)

    notification_pk: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))
    content: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    strict: Mapped[bool] = mapped_column(Boolean)
    topic_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tracking: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    saved_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    restored_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
