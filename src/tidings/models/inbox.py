from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, JSONValue, UTCDateTime, partial_index

_UNREAD = "read_at IS NULL AND archived_at IS NULL"


class InboxMessage(EnvironmentRow, Base):
    """One message in a user's in-app inbox, stored once per Tidings message."""

    __tablename__ = "inbox_message"
    __table_args__ = (
        # A re-driven delivery of the same message stores nothing new.
        UniqueConstraint("environment_id", "message_id"),
        # A user's messages, newest first (keyset on id, scanned backwards).
        Index("ix_inbox_message_user", "environment_id", "user_id", "id"),
        # The unread count touches only unread rows, however many read ones pile up.
        partial_index("ix_inbox_message_unread", "environment_id", "user_id", where=_UNREAD),
    )

    user_id: Mapped[str] = mapped_column(String(300))
    message_id: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    action_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
