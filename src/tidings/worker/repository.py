"""Every query on worker_lease, and the SQL by which other tables' work stamped with an
owner is found abandoned."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from tidings.config import Settings
from tidings.kit.sql import Repository, claim_rows, execute_counting
from tidings.models import WorkerLease


def owner_alive(
    owner: InstrumentedAttribute[str | None], now: datetime, settings: Settings
) -> ColumnElement[bool]:
    """SQL: the row's owner holds a lease renewed within the lease period (for other
    repositories' queries on work stamped with its owner)."""
    fresh = now - timedelta(seconds=settings.worker_lease_seconds)
    return exists().where(WorkerLease.id == owner, WorkerLease.heartbeat_at > fresh)


@dataclass(frozen=True, slots=True)
class AttemptTable:
    """A table of delivery attempts stamped with an owner (message_delivery,
    webhook_delivery: their `id`, `environment_id`, `status`, `sending_since`, `owner`,
    `next_attempt_at`, `updated_at` and `swept_at`), with its `sending` and `pending`
    statuses and how long an attempt may be sending before it counts as lost."""

    table: Any
    sending: str
    pending: str
    stale_seconds: Callable[[Settings], float]

    def orphaned(self, now: datetime, settings: Settings) -> ColumnElement[bool]:
        """SQL: a delivery in its `sending` status whose attempt nobody will finish. Its
        owner's lease has expired or is gone, or, as a backstop (an attempt lost inside a
        live process, or started by one without a lease), it has been sending for longer
        than `stale_seconds`."""
        table = self.table
        stale = now - timedelta(seconds=self.stale_seconds(settings))
        orphaned: ColumnElement[bool] = (table.status == self.sending) & (
            (table.sending_since <= stale)
            | (table.owner.is_not(None) & ~owner_alive(table.owner, now, settings))
        )
        return orphaned

    def is_orphaned(
        self, session: Session, delivery_id: int, now: datetime, settings: Settings
    ) -> bool:
        """Whether the delivery's `sending` attempt has nobody to finish it (`orphaned`)."""
        found = session.scalar(
            select(self.table.id).where(self.table.id == delivery_id, self.orphaned(now, settings))
        )
        return found is not None

    def claim_redrivable(
        self,
        session: Session,
        *,
        due_before: datetime,
        unclaimed_since: datetime,
        now: datetime,
        settings: Settings,
        limit: int,
    ) -> list[int]:
        """Claim deliveries for a sweep to re-drive (`kit.sql.claim_rows`): attempts left
        `sending` by nobody (`orphaned`), and `pending` ones due since `due_before` whose
        job was lost. Their ids."""
        table = self.table
        claimed = claim_rows(
            session,
            table.id,
            table.swept_at,
            self.orphaned(now, settings)
            | (
                (table.status == self.pending)
                & (table.next_attempt_at.is_(None) | (table.next_attempt_at <= due_before))
                & (table.updated_at <= due_before)
            ),
            environment=table.environment_id,
            now=now,
            unclaimed_since=unclaimed_since,
            limit=limit,
        )
        return [delivery_id for delivery_id, _ in claimed]


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
