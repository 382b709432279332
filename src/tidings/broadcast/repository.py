"""Every SQL query on broadcasts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from tidings.kit.sql import Repository, claim_rows
from tidings.models import Broadcast, BroadcastStatus


class BroadcastRepository(Repository):
    def get(self, environment_id: str, broadcast_id: str) -> Broadcast | None:
        return self.find_row(Broadcast, environment_id=environment_id, broadcast_id=broadcast_id)

    def lock(self, broadcast_pk: int) -> Broadcast | None:
        """The row, locked until the transaction ends and read afresh."""
        return self.lock_row(Broadcast, id=broadcast_pk)

    def add(self, broadcast: Broadcast) -> None:
        self.session.add(broadcast)
        self.session.flush()

    def page(self, environment_id: str, after_id: int | None, limit: int) -> Sequence[Broadcast]:
        return self.environment_page(Broadcast, environment_id, after_id, limit)

    def claim(self, broadcast_pk: int, expected: dict[str, Any], **values: Any) -> bool:
        """`compare_and_set` on the broadcast's row."""
        return self.compare_and_set(Broadcast, broadcast_pk, expected, values)

    def paced_until(self, environment_id: str) -> datetime | None:
        """How far the environment's broadcasts have used its send rate."""
        return self.session.scalar(
            select(func.max(Broadcast.paced_until)).where(
                Broadcast.environment_id == environment_id
            )
        )

    def claim_due(
        self, before: datetime, now: datetime, unclaimed_since: datetime, limit: int
    ) -> list[tuple[int, int]]:
        """Claim, for a sweep to re-drive, broadcasts still releasing whose next chunk was
        due before `before`: (pk, cursor) of each."""
        claimed = claim_rows(
            self.session,
            Broadcast.id,
            Broadcast.swept_at,
            Broadcast.status.in_(tuple(BroadcastStatus.ACTIVE))
            & (Broadcast.next_chunk_at <= before),
            environment=Broadcast.environment_id,
            now=now,
            unclaimed_since=unclaimed_since,
            limit=limit,
        )
        if not claimed:
            return []
        pks = [pk for pk, _ in claimed]
        rows = self.session.execute(
            select(Broadcast.id, Broadcast.cursor)
            .where(Broadcast.id.in_(pks))
            .order_by(Broadcast.id)
        )
        return [(pk, cursor) for pk, cursor in rows]
