"""Every query on worker_lease."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, select, update
from sqlalchemy.orm import InstrumentedAttribute

from tidings.config import Settings
from tidings.kit.sql import Repository, execute_counting
from tidings.models import WorkerLease


def owner_alive(
    owner: InstrumentedAttribute[str | None], now: datetime, settings: Settings
) -> ColumnElement[bool]:
    """SQL: the row's owner holds a lease renewed within the lease period (for other
    repositories' queries on work stamped with its owner)."""
    fresh = now - timedelta(seconds=settings.worker_lease_seconds)
    return exists().where(WorkerLease.id == owner, WorkerLease.heartbeat_at > fresh)


class LeaseRepository(Repository):
    def renew(self, lease_id: str, now: datetime) -> None:
        """Renew the lease, or take it again if it is new or was deleted meanwhile."""
        renewed = execute_counting(
            self.session,
            update(WorkerLease).where(WorkerLease.id == lease_id).values(heartbeat_at=now),
        )
        if not renewed:
            self.session.add(
                WorkerLease(
                    id=lease_id,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def give_up(self, lease_id: str) -> None:
        execute_counting(self.session, delete(WorkerLease).where(WorkerLease.id == lease_id))

    def expired(self, cutoff: datetime) -> list[str]:
        return list(
            self.session.scalars(select(WorkerLease.id).where(WorkerLease.heartbeat_at <= cutoff))
        )

    def claim_expired(self, lease_id: str, cutoff: datetime) -> bool:
        """Delete the lease if it is still expired; whether this call deleted it."""
        return bool(
            execute_counting(
                self.session,
                delete(WorkerLease).where(
                    WorkerLease.id == lease_id, WorkerLease.heartbeat_at <= cutoff
                ),
            )
        )
