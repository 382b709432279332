from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, JSONValue, UTCDateTime


class Notification(EnvironmentRow, Base):
    """A notification template: content per channel, default routing, strictness."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("environment_id", "notification_id"),)

    notification_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    content: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    strict: Mapped[bool] = mapped_column(Boolean, default=False)
    topic_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
