from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow, JSONValue, UTCDateTime
from tidings.models.stamped import Stamped


class Tenant(EnvironmentRow, Stamped, Base):
    """A tenant (Segment group, Courier tenant), keyed by `groupId`."""

    __tablename__ = "tenant"
    __table_args__ = (UniqueConstraint("environment_id", "tenant_id"),)

    tenant_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)


class TenantMembership(EnvironmentRow, Base):
    __tablename__ = "tenant_membership"
    __table_args__ = (
        UniqueConstraint("environment_id", "tenant_id", "user_id"),
        Index("ix_tenant_membership_user", "environment_id", "user_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
