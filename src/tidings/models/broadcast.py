from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, BigIntegerKey, EnvironmentRow, JSONValue, UTCDateTime


class BroadcastStatus:
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELED = "canceled"
    COMPLETED = "completed"

    # Still releasing chunks (or waiting to start): pause and cancel apply.
    ACTIVE = frozenset({SCHEDULED, RUNNING})
    FINAL = frozenset({CANCELED, COMPLETED})


class Broadcast(EnvironmentRow, Base):
    """A template sent to every member of a list, an audience or a tenant (broadcast/).

    Its recipients are released `chunk` at a time, each chunk one transaction that inserts
    its messages and moves `cursor` (the last list subscription, audience stay or tenant
    membership id reached) by compare-and-set, so a crash between chunks resumes after the
    last committed one and never makes a recipient's message twice (each message id is
    derived from the broadcast and the user as well). `next_chunk_at` is when the next
    chunk may be released, `paced_until` how far this broadcast's chunks have used the
    environment's send rate (TIDINGS_BROADCAST_RATE)."""

    __tablename__ = "broadcast"
    __table_args__ = (
        UniqueConstraint("environment_id", "broadcast_id"),
        Index("ix_broadcast_due", "status", "next_chunk_at"),
        Index("ix_broadcast_paced", "environment_id", "paced_until"),
    )

    broadcast_id: Mapped[str] = mapped_column(String(60))
    template: Mapped[str] = mapped_column(String(300))
    # {"list_id": …} | {"audience_id": …} | {"tenant_id": …}
    target: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    window: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cursor: Mapped[int] = mapped_column(BigIntegerKey, default=0)
    released: Mapped[int] = mapped_column(Integer, default=0)
    next_chunk_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paced_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
