"""The suppression list: addresses Tidings does not send to (suppression/service.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, UTCDateTime
from tidings.models.stamped import Stamped


class SuppressionReason:
    """Why an address is on the list; a suppressed message ends SUPPRESSED with it."""

    HARD_BOUNCE = "HARD_BOUNCE"
    COMPLAINT = "COMPLAINT"
    # `Settings.soft_bounce_limit` soft bounces in a row, with no delivery between them.
    SOFT_BOUNCES = "SOFT_BOUNCES"
    # A one-click unsubscribe from a topic: the entry is scoped to that topic.
    UNSUBSCRIBED = "UNSUBSCRIBED"
    # Added by hand: the API, Studio or a CSV import.
    MANUAL = "MANUAL"

    ALL = (HARD_BOUNCE, COMPLAINT, SOFT_BOUNCES, UNSUBSCRIBED, MANUAL)


# `topic_id` of an entry that holds for every topic (a column in a unique key cannot be
# NULL and still be unique on both databases).
EVERY_TOPIC = ""


class Suppression(EnvironmentRow, Base):
    """One suppressed address of a channel, for every topic or for one topic."""

    __tablename__ = "suppression"
    __table_args__ = (
        # Also the send-time lookup: (environment, channel, address).
        UniqueConstraint("environment_id", "channel", "address", "topic_id"),
        Index("ix_suppression_listing", "environment_id", "id"),
    )

    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(500))
    topic_id: Mapped[str] = mapped_column(String(200), default=EVERY_TOPIC)
    reason: Mapped[str] = mapped_column(String(40))
    # Who put it there: a provider's name (its bounce or complaint), "unsubscribe", "api",
    # "studio" or "import".
    source: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The user whose one-click unsubscribe made the entry: re-subscribing lifts it.
    user_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SoftBounceStreak(EnvironmentRow, Stamped, Base):
    """Soft bounces in a row of one address; a delivery to it deletes the row."""

    __tablename__ = "soft_bounce_streak"
    __table_args__ = (UniqueConstraint("environment_id", "channel", "address"),)

    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(500))
    count: Mapped[int] = mapped_column(Integer, default=0)
