from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import (
    Base,
    EnvironmentRow,
    JSONValue,
    KeyedRow,
    UTCDateTime,
)
from tidings.models.stamped import Stamped


class Profile(EnvironmentRow, Stamped, Base):
    """A recipient profile, keyed by the Segment `userId` (Courier's `user_id`), or by an
    `anonymousId` (`anonymous`) until that visitor is identified and merged into a user.

    `trait_times` maps each top-level trait to the time of the write that set it (the event's
    timestamp for Segment, the request time for the API), so an older identify arriving late
    does not overwrite a newer value.
    """

    __tablename__ = "profile"
    __table_args__ = (UniqueConstraint("environment_id", "user_id"),)

    user_id: Mapped[str] = mapped_column(String(300))
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    trait_times: Mapped[dict[str, str] | None] = mapped_column(JSONValue, nullable=True)


class ProfileAlias(KeyedRow, Base):
    """An id merged into a user: an anonymousId after identify, or an alias's previousId.

    Later events carrying `alias_id` (as their anonymousId, or userId for a previousId) are
    processed as `user_id`'s.
    """

    __tablename__ = "profile_alias"
    __table_args__ = (UniqueConstraint("environment_id", "alias_id"),)

    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    alias_id: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str] = mapped_column(String(300), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
