from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, BigIntegerKey, EnvironmentRow, JSONValue, UTCDateTime


class ReplayStatus:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    UNFINISHED = (QUEUED, RUNNING)


class AutomationReplay(EnvironmentRow, Base):
    """A replay of an automation's stored Segment events through a definition, in a sandbox
    (replay/service.py). A worker process holds `lease_until` while it runs it, and writes
    `events_done` as it goes; `result` holds the diff's counts and samples once done."""

    __tablename__ = "automation_replay"
    __table_args__ = (
        UniqueConstraint("environment_id", "replay_id"),
        Index("ix_automation_replay_listing", "environment_id", "automation_id", "id"),
        Index("ix_automation_replay_status", "status", "lease_until"),
    )

    replay_id: Mapped[str] = mapped_column(String(40))
    automation_id: Mapped[str] = mapped_column(String(300))
    # "draft", or "version N".
    label: Mapped[str] = mapped_column(String(40))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    event_limit: Mapped[int] = mapped_column(Integer)
    sample_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    events_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    events_done: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AutomationReplayEvent(Base):
    """One replayed event: the runs and messages it would give, those it gave, and the kind
    of difference (`added`, `removed`, `changed`, `same`, or `none`: no message either way)."""

    __tablename__ = "automation_replay_event"
    __table_args__ = (
        Index("ix_automation_replay_event_change", "replay_pk", "change", "position"),
    )

    replay_pk: Mapped[int] = mapped_column(
        BigIntegerKey,
        ForeignKey("automation_replay.id", ondelete="CASCADE"),
        primary_key=True,
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    change: Mapped[str] = mapped_column(String(10))
    runs: Mapped[list[Any]] = mapped_column(JSONValue)
    messages: Mapped[list[Any]] = mapped_column(JSONValue)
    before: Mapped[list[Any]] = mapped_column(JSONValue)
