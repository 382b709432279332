from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, JSONValue, UTCDateTime, partial_index


class EventStatus:
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"


class Event(EnvironmentRow, Base):
    """The durable inbox: one row per accepted event, plus its processing record."""

    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("environment_id", "source", "message_id"),
        Index("ix_event_listing", "environment_id", "source", "id"),
        Index("ix_event_name", "environment_id", "source", "name", "id"),
        # A user's processed events; unprocessed ones are in ix_event_pending below, and
        # EventRepository reads both for a user's events.
        partial_index(
            "ix_event_user",
            "environment_id",
            "source",
            "user_id",
            "id",
            where=f"status <> '{EventStatus.RECEIVED}'",
        ),
        Index("ix_event_status", "status", "received_at"),
        # The unprocessed events in arrival order, each with its user. Ingest inserts every
        # event as received, at the end of this index, so a batch appends to one page where an
        # index by user took a random page per event. Processing reads a user's earlier
        # unprocessed events from it: the oldest ones, since it takes the oldest first.
        partial_index(
            "ix_event_pending",
            "environment_id",
            "source",
            "id",
            "user_id",
            where=f"status = '{EventStatus.RECEIVED}'",
        ),
    )

    source: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    anonymous_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default=EventStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    diagnostics: Mapped[list[dict[str, Any]]] = mapped_column(JSONValue, default=list)
    profile_diff: Mapped[list[dict[str, Any]]] = mapped_column(JSONValue, default=list)
    effects: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When a sweep last claimed it for re-driving (jobs/engine.py): sweepers never take the
    # same row at once, and one row is not re-driven again while its claim holds.
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
