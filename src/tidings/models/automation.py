from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, BigIntegerKey, JSONValue, UTCDateTime


class Automation(Base):
    """An automation template: its id, and which saved version is current.

    A deleted automation keeps its row (`deleted_at` set) and its versions, so runs that
    started from one of them can still read it; saving the id again continues the numbering.
    """

    __tablename__ = "automation"
    __table_args__ = (UniqueConstraint("environment_id", "automation_id"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    automation_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AutomationVersion(Base):
    """One saved definition, never changed after insert: a run points at the one it began with."""

    __tablename__ = "automation_version"
    __table_args__ = (UniqueConstraint("automation_pk", "version"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    automation_pk: Mapped[int] = mapped_column(ForeignKey("automation.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AutomationTrigger(Base):
    """The current version's triggers, one row each, so an event finds its automations by index."""

    __tablename__ = "automation_trigger"
    __table_args__ = (
        UniqueConstraint("automation_pk", "source", "event"),
        Index("ix_automation_trigger_event", "environment_id", "source", "event"),
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    automation_pk: Mapped[int] = mapped_column(ForeignKey("automation.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(300))
