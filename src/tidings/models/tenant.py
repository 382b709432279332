from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, BigIntegerKey, JSONValue, UTCDateTime


class Tenant(Base):
    """A tenant (Segment group, Courier tenant), keyed by `groupId`."""

    __tablename__ = "tenant"
    __table_args__ = (UniqueConstraint("environment_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(300))
    name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenantMembership(Base):
    __tablename__ = "tenant_membership"
    __table_args__ = (
        UniqueConstraint("environment_id", "tenant_id", "user_id"),
        Index("ix_tenant_membership_user", "environment_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
