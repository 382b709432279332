from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, UTCDateTime


class WorkerLease(Base):
    """A consumer process that is alive: it renews `heartbeat_at` every few seconds.

    Work a process carries out outside a transaction (a delivery's provider call) is stamped
    with its lease id; once the lease expires, the sweeper re-drives that work at once.
    """

    __tablename__ = "worker_lease"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
