from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import (
    Base,
    EnvironmentRow,
    JSONValue,
    KeyedRow,
    UTCDateTime,
    partial_index,
)
from tidings.models.stamped import Stamped


class RecipientList(EnvironmentRow, Stamped, Base):
    """A list (Courier's Lists API): named, dot-separated ids such as `acme.eng.oncall`."""

    __tablename__ = "recipient_list"
    __table_args__ = (UniqueConstraint("environment_id", "list_id"),)

    list_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))


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


class SubscriptionTopic(EnvironmentRow, Stamped, Base):
    """A subscription topic; its default status applies to users with no preference."""

    __tablename__ = "subscription_topic"
    __table_args__ = (UniqueConstraint("environment_id", "topic_id"),)

    topic_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    default_status: Mapped[str] = mapped_column(String(20))


class UserPreference(EnvironmentRow, Base):
    __tablename__ = "user_preference"
    __table_args__ = (UniqueConstraint("environment_id", "user_id", "topic_id"),)

    user_id: Mapped[str] = mapped_column(String(300))
    topic_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    has_custom_routing: Mapped[bool] = mapped_column(Boolean, default=False)
    custom_routing: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Audience(EnvironmentRow, Stamped, Base):
    """A saved condition over profiles and their event history (audience/conditions.py).

    `version` counts the changes of the condition; a change starts a rescan of every profile
    (`scan_version` is the version the last finished or running scan is for, `scan_after` the
    last user id it reached, `scanned`/`scan_total` its progress)."""

    __tablename__ = "audience"
    __table_args__ = (UniqueConstraint("environment_id", "audience_id"),)

    audience_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    version: Mapped[int] = mapped_column(Integer, default=1)
    scan_version: Mapped[int] = mapped_column(Integer, default=0)
    scan_after: Mapped[str | None] = mapped_column(String(300), nullable=True)
    scanned: Mapped[int] = mapped_column(Integer, default=0)
    scan_total: Mapped[int] = mapped_column(Integer, default=0)
    scan_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    scan_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# A stay not yet ended: the user is a member.
_OPEN = "left_at IS NULL"


class AudienceMember(KeyedRow, Base):
    """One stay of a user in an audience: from `entered_at` until `left_at` (null while the
    user is a member). A user who leaves and comes back has a row per stay."""

    __tablename__ = "audience_member"
    __table_args__ = (
        # At most one open stay per user and audience; also the members, in entry order.
        partial_index(
            "ix_audience_member_current", "audience_pk", "user_id", where=_OPEN, unique=True
        ),
        partial_index("ix_audience_member_page", "audience_pk", "id", where=_OPEN),
        Index("ix_audience_member_user", "environment_id", "user_id"),
        Index("ix_audience_member_changes", "audience_pk", "changed_at"),
    )

    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    audience_pk: Mapped[int] = mapped_column(ForeignKey("audience.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The last entry or exit: the changes feed reads them in this order.
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AudienceCheck(KeyedRow, Base):
    """When a user's membership can change by time alone (a "7 days" window passing an
    event): the sweeper evaluates the user again at `check_at`."""

    __tablename__ = "audience_check"
    __table_args__ = (
        UniqueConstraint("audience_pk", "user_id"),
        Index("ix_audience_check_due", "check_at"),
    )

    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    audience_pk: Mapped[int] = mapped_column(ForeignKey("audience.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(300))
    check_at: Mapped[datetime] = mapped_column(UTCDateTime())
